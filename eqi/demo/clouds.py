"""Simulated clouds, cloud shadows and their quality flags (Landsat QA_PIXEL, Sentinel-2 SCL).

Pure computation.  Clouds are blobs of thresholded smooth noise; a ring of 3 pixels around each
cloud is the "dilated cloud" of USGS; shadows are the cloud mask displaced away from the sun.  The
flag values are composed bit by bit and reproduce the values found in real Collection 2 QA_PIXEL
bands (21824 clear land, 21952 clear water, 22280 cloud, 55052 cloud + cirrus, 22018 dilated
cloud, 23888 cloud shadow, 23826 shadow in the dilated ring, 1 fill).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from eqi.demo.landscape import smooth_noise

__all__ = [
    "CloudMasks",
    "QA",
    "simulate_clouds",
    "limit_obscured",
    "shadow_shift_px",
    "apply_atmosphere",
    "qa_pixel",
    "scene_classification",
    "corner_wedge",
]

DILATION_PX = 3


class QA:
    """Landsat Collection 2 QA_PIXEL bits and confidence fields."""

    FILL = 1 << 0
    DILATED = 1 << 1
    CIRRUS = 1 << 2
    CLOUD = 1 << 3
    SHADOW = 1 << 4
    SNOW = 1 << 5
    CLEAR = 1 << 6
    WATER = 1 << 7
    # 2-bit confidences: 1 low, 2 medium, 3 high
    CLOUD_CONF = 8
    SHADOW_CONF = 10
    SNOW_CONF = 12
    CIRRUS_CONF = 14

    @staticmethod
    def conf(cloud: int = 1, shadow: int = 1, snow: int = 1, cirrus: int = 1) -> int:
        """Confidence bits 8-15 (low = 1 everywhere, as in real clear pixels)."""
        return (
            (cloud << QA.CLOUD_CONF)
            | (shadow << QA.SHADOW_CONF)
            | (snow << QA.SNOW_CONF)
            | (cirrus << QA.CIRRUS_CONF)
        )


_CLEAR_LAND = QA.conf() | QA.CLEAR  # 21824
_CLEAR_WATER = _CLEAR_LAND | QA.WATER  # 21952
_CLOUD = QA.conf(cloud=3) | QA.CLOUD  # 22280
_CIRRUS_CLOUD = QA.conf(cloud=3, cirrus=3) | QA.CLOUD | QA.CIRRUS  # 55052
_DILATED = QA.conf(cloud=2) | QA.DILATED  # 22018
_SHADOW = QA.conf(shadow=3) | QA.SHADOW | QA.CLEAR  # 23888
_SHADOW_DILATED = QA.conf(shadow=3) | QA.SHADOW | QA.DILATED  # 23826

# cloud-top spectrum (SR_B1..SR_B7) and shadow darkening per band
_CLOUD_SPECTRUM = np.array([0.42, 0.44, 0.46, 0.48, 0.52, 0.40, 0.28], dtype=np.float32)
_SHADOW_FACTOR = np.array([0.55, 0.50, 0.45, 0.40, 0.35, 0.35, 0.35], dtype=np.float32)
_CLOUD_TOP_K = 258.0
_SHADOW_COOLING_K = 3.0
_HAZE = 0.12  # cloud fraction mixed into the dilated ring
_CLOUD_HEIGHT_M = 1500.0


@dataclass
class CloudMasks:
    """Per-date masks on one grid (all (H, W))."""

    cloud: np.ndarray  # bool, thick or thin cloud
    cirrus: np.ndarray  # bool, subset of cloud with cirrus
    thickness: np.ndarray  # float32 0-1 inside clouds
    dilated: np.ndarray  # bool, ring around clouds, not cloud
    shadow: np.ndarray  # bool, cloud shadow, not cloud

    @property
    def obscured(self) -> np.ndarray:
        """Anything a mask should remove: cloud, dilated ring or shadow."""
        return self.cloud | self.dilated | self.shadow


def shadow_shift_px(
    sun_azimuth_deg: float, sun_elevation_deg: float, resolution_m: float
) -> tuple[int, int]:
    """(rows, cols) displacement of a shadow from its cloud, away from the sun."""
    length = _CLOUD_HEIGHT_M / np.tan(np.radians(max(sun_elevation_deg, 10.0))) / resolution_m
    az = np.radians(sun_azimuth_deg)
    return int(round(np.cos(az) * length)), int(round(-np.sin(az) * length))


def _shift(mask: np.ndarray, dr: int, dc: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    src = mask[max(-dr, 0) : h - max(dr, 0), max(-dc, 0) : w - max(dc, 0)]
    out[max(dr, 0) : max(dr, 0) + src.shape[0], max(dc, 0) : max(dc, 0) + src.shape[1]] = src
    return out


def simulate_clouds(
    rng: np.random.Generator,
    shape: tuple[int, int],
    cover: float,
    resolution_m: float,
    shift_px: tuple[int, int],
    forced_cloud: np.ndarray | None = None,
) -> CloudMasks:
    """Blobby clouds covering about ``cover`` (0-1) of the grid, their ring and shadows.

    ``forced_cloud`` (bool) is added to the clouds (the demo's always-cloudy patch).
    """
    px_per_km = 1000.0 / resolution_m
    field = smooth_noise(rng, shape, 1.2 * px_per_km) + 0.35 * smooth_noise(
        rng, shape, 0.3 * px_per_km
    )
    cirrus_field = smooth_noise(rng, shape, 0.8 * px_per_km)
    if cover > 0:
        thr = float(np.quantile(field, 1.0 - cover))
        cloud = field > thr
        thickness = np.clip((field - thr) / 0.8, 0.0, 1.0).astype(np.float32)
    else:
        cloud = np.zeros(shape, dtype=bool)
        thickness = np.zeros(shape, dtype=np.float32)
    if forced_cloud is not None:
        cloud |= forced_cloud
        thickness = np.where(forced_cloud, np.float32(1.0), thickness)
    cirrus = cloud & (cirrus_field > 1.0) & (thickness < 0.6)
    dilated = ndimage.binary_dilation(cloud, iterations=DILATION_PX) & ~cloud
    shadow = _shift(cloud, *shift_px) & ~cloud
    return CloudMasks(
        cloud=cloud, cirrus=cirrus, thickness=thickness, dilated=dilated, shadow=shadow
    )


def limit_obscured(masks: CloudMasks, count: np.ndarray, limit: int, exempt: np.ndarray) -> None:
    """Clear pixels already obscured ``limit`` times (except ``exempt``), then update ``count``.

    Guarantees that no pixel outside ``exempt`` is obscured on more than ``limit`` of the dates
    passed through here, so every pixel keeps clear observations for the composites.
    """
    keep = (count < limit) | exempt
    masks.cloud &= keep
    masks.cirrus &= keep
    masks.dilated &= keep
    masks.shadow &= keep
    count += masks.obscured


def apply_atmosphere(spectra: np.ndarray, masks: CloudMasks) -> None:
    """Put clouds, haze and shadows into (8, H, W) surface spectra, in place."""
    refl, st = spectra[:7], spectra[7]
    alpha = np.zeros(masks.cloud.shape, dtype=np.float32)
    alpha[masks.dilated] = _HAZE
    thick = np.float32(0.6) + np.float32(0.4) * masks.thickness
    alpha = np.where(masks.cloud, thick, alpha)
    alpha = np.where(masks.cirrus, np.float32(0.55), alpha)
    brightness = np.float32(0.9) + np.float32(0.25) * masks.thickness
    cloud_refl = _CLOUD_SPECTRUM[:, None, None] * brightness[None]
    refl *= np.float32(1.0) - alpha[None]
    refl += alpha[None] * cloud_refl
    st_cloud = np.float32(_CLOUD_TOP_K) + np.float32(12.0) * (np.float32(1.0) - masks.thickness)
    st *= np.float32(1.0) - alpha
    st += alpha * st_cloud
    shade = masks.shadow
    refl[:, shade] *= _SHADOW_FACTOR[:, None]
    st[shade] -= np.float32(_SHADOW_COOLING_K)


def qa_pixel(masks: CloudMasks, water: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """Landsat C2 QA_PIXEL (uint16) for the masks; ``water`` sets bit 7 on clear/shadowed water."""
    qa = np.where(water, np.uint16(_CLEAR_WATER), np.uint16(_CLEAR_LAND)).astype(np.uint16)
    shadow_val = np.where(water, np.uint16(_SHADOW | QA.WATER), np.uint16(_SHADOW))
    qa = np.where(masks.shadow, shadow_val, qa)
    qa = np.where(masks.dilated, np.uint16(_DILATED), qa)
    qa = np.where(masks.dilated & masks.shadow, np.uint16(_SHADOW_DILATED), qa)
    qa = np.where(masks.cloud, np.uint16(_CLOUD), qa)
    qa = np.where(masks.cirrus, np.uint16(_CIRRUS_CLOUD), qa)
    qa[fill] = QA.FILL
    return qa.astype(np.uint16)


def scene_classification(
    masks: CloudMasks, water: np.ndarray, ndvi: np.ndarray, nodata: np.ndarray
) -> np.ndarray:
    """Sentinel-2 SCL (uint8): 9/8 cloud high/medium probability (ring = 8), 10 cirrus,
    3 shadow, 6 water, 4 vegetation (NDVI >= 0.4), 5 not vegetated, 0 no data."""
    scl = np.where(ndvi >= 0.4, np.uint8(4), np.uint8(5))
    scl = np.where(water, np.uint8(6), scl)
    scl = np.where(masks.shadow, np.uint8(3), scl)
    scl = np.where(masks.dilated, np.uint8(8), scl)
    scl = np.where(masks.cloud, np.where(masks.thickness > 0.5, np.uint8(9), np.uint8(8)), scl)
    scl = np.where(masks.cirrus, np.uint8(10), scl)
    scl[nodata] = 0
    return scl.astype(np.uint8)


def corner_wedge(region: np.ndarray, corner: str, buffer_px: int = 3) -> np.ndarray:
    """A triangular no-data wedge in one grid corner ("nw" or "se") that stays off the region."""
    h, w = region.shape
    rows = np.arange(h)[:, None]
    cols = np.arange(w)[None, :]
    if corner == "nw":
        diag = rows + cols
    elif corner == "se":
        diag = (h - 1 - rows) + (w - 1 - cols)
    else:
        raise ValueError(f"corner must be 'nw' or 'se', not {corner!r}")
    if not region.any():
        return np.zeros_like(region)
    limit = int(diag[region].min()) - buffer_px
    return diag < limit
