"""Digital numbers of the simulated scenes: the published scalings, inverted.

The scale/offset values come from :mod:`eqi.sensors` (the one band table of eqi), so the demo
encodes exactly what the readers decode:

* Landsat C2 L2 SR: ``DN = round((reflectance + 0.2) / 2.75e-5)``, clipped to 1..65535, 0 = fill.
* Landsat C2 L2 ST: ``DN = round((kelvin - 149.0) / 0.00341802)``, clipped to 1..65535, 0 = fill.
* Sentinel-2 L2A: ``DN = round(reflectance * 10000) + offset_dn`` (offset_dn = 1000 from processing
  baseline 04.00, else 0), clipped to 1..65535, 0 = no data.
"""

from __future__ import annotations

import numpy as np

from eqi.sensors import SENSORS

__all__ = [
    "LANDSAT_SR_SCALE",
    "LANDSAT_SR_OFFSET",
    "LANDSAT_ST_SCALE",
    "LANDSAT_ST_OFFSET",
    "S2_SCALE",
    "landsat_sr_dn",
    "landsat_st_dn",
    "s2_dn",
]

_L8 = SENSORS["landsat8"].bands
LANDSAT_SR_SCALE: float = _L8["red"].scale
LANDSAT_SR_OFFSET: float = _L8["red"].offset
LANDSAT_ST_SCALE: float = _L8["lwir"].scale
LANDSAT_ST_OFFSET: float = _L8["lwir"].offset
S2_SCALE: float = SENSORS["sentinel2"].bands["red"].scale


def _to_uint16(values: np.ndarray, nodata: np.ndarray | None) -> np.ndarray:
    dn = np.clip(np.rint(values), 1, 65535).astype(np.uint16)
    if nodata is not None:
        dn[..., nodata] = 0  # a (H, W) mask also blanks every band of a (bands, H, W) stack
    return dn


def landsat_sr_dn(reflectance: np.ndarray, fill: np.ndarray | None = None) -> np.ndarray:
    """Landsat C2 L2 surface-reflectance DN (uint16) from reflectance (unitless)."""
    values = (
        np.asarray(reflectance, dtype=np.float32) - np.float32(LANDSAT_SR_OFFSET)
    ) / np.float32(LANDSAT_SR_SCALE)
    return _to_uint16(values, fill)


def landsat_st_dn(kelvin: np.ndarray, fill: np.ndarray | None = None) -> np.ndarray:
    """Landsat C2 L2 surface-temperature DN (uint16) from kelvin."""
    values = (np.asarray(kelvin, dtype=np.float32) - np.float32(LANDSAT_ST_OFFSET)) / np.float32(
        LANDSAT_ST_SCALE
    )
    return _to_uint16(values, fill)


def s2_dn(reflectance: np.ndarray, offset_dn: int, nodata: np.ndarray | None = None) -> np.ndarray:
    """Sentinel-2 L2A DN (uint16) from reflectance; ``offset_dn`` is +1000 from baseline 04.00."""
    values = np.rint(np.asarray(reflectance, dtype=np.float32) / np.float32(S2_SCALE)) + np.float32(
        offset_dn
    )
    return _to_uint16(values, nodata)
