"""Clear-pixel masks from Landsat QA_PIXEL bits and Sentinel-2 SCL classes (pure functions).

``True`` means *clear*: usable for compositing.  Which flags count as bad is configurable; source
nodata (QA_PIXEL fill bit, SCL class 0) is always bad.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MaskRules",
    "QA_PIXEL_BITS",
    "SCL_CLASSES",
    "DEFAULT_QA_BAD",
    "DEFAULT_SCL_BAD",
    "qa_pixel_clear",
    "scl_clear",
    "buffer_bad",
]

# Landsat Collection 2 QA_PIXEL bit positions (USGS Landsat 8-9 C2 L2 Science Product Guide).
QA_PIXEL_BITS: dict[str, int] = {
    "fill": 0,
    "dilated_cloud": 1,
    "cirrus": 2,
    "cloud": 3,
    "cloud_shadow": 4,
    "snow": 5,
    "clear": 6,
    "water": 7,
}

# Sentinel-2 L2A scene classification (SCL) classes.
SCL_CLASSES: dict[int, str] = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area_pixels",
    3: "cloud_shadows",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow",
}

DEFAULT_QA_BAD: tuple[str, ...] = ("dilated_cloud", "cirrus", "cloud", "cloud_shadow", "snow")
DEFAULT_SCL_BAD: tuple[int, ...] = (1, 3, 8, 9, 10, 11)


@dataclass(frozen=True)
class MaskRules:
    """Which observations count as not usable: QA_PIXEL flags, SCL classes, a buffer in pixels."""

    qa_pixel_bad: tuple[str, ...] = DEFAULT_QA_BAD
    scl_bad: tuple[int, ...] = DEFAULT_SCL_BAD
    buffer_px: int = 0


def qa_pixel_clear(qa: np.ndarray, bad_flags: Iterable[str] = DEFAULT_QA_BAD) -> np.ndarray:
    """Clear mask from a QA_PIXEL array: no fill bit and none of ``bad_flags`` set."""
    bits = 1 << QA_PIXEL_BITS["fill"]
    for name in bad_flags:
        bits |= 1 << QA_PIXEL_BITS[name]
    return (np.asarray(qa).astype(np.uint16, copy=False) & np.uint16(bits)) == 0


def scl_clear(scl: np.ndarray, bad_classes: Iterable[int] = DEFAULT_SCL_BAD) -> np.ndarray:
    """Clear mask from an SCL array: not class 0 (no data) and not one of ``bad_classes``."""
    lut = np.ones(256, dtype=bool)
    lut[0] = False
    for value in bad_classes:
        lut[int(value)] = False
    return lut[np.asarray(scl).astype(np.uint8, copy=False)]


def buffer_bad(clear: np.ndarray, radius_px: int) -> np.ndarray:
    """Grow the not-clear area of each 2-D slice by ``radius_px`` pixels (disk dilation).

    Cloud edges are often missed by QA flags; a small buffer removes them.  Works on (y, x) or
    (t, y, x) arrays; ``radius_px <= 0`` returns the input.
    """
    if radius_px <= 0:
        return clear
    from scipy.ndimage import binary_dilation
    from skimage.morphology import disk

    footprint = disk(radius_px)
    if clear.ndim == 2:
        return ~binary_dilation(~clear, structure=footprint)
    return np.stack([~binary_dilation(~c, structure=footprint) for c in clear])
