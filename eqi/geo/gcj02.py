"""GCJ-02 ("Mars" coordinates used by Amap and other Chinese map services) ↔ WGS 84.

GCJ-02 is WGS 84 longitude/latitude plus a deliberate, smoothly varying offset (100–700 m in
mainland China).  The forward offset is the widely published formula (Krasovsky-1940 semi-major
axis ``a = 6378245 m`` and eccentricity² ``ee = 0.006693421622965943``); it has no closed-form
inverse, so :func:`gcj02_to_wgs84` inverts it by fixed-point iteration to well below 1e-7°
(~1 cm).  Points outside the rough China bounding box are left unchanged, as every public
implementation does.

The constants are the definition of the coordinate system (like an ellipsoid), not method
parameters.

Examples
--------
>>> lon, lat = wgs84_to_gcj02(121.5272106, 31.1774276)
>>> round(float(lon), 9), round(float(lat), 9)
(121.531541859, 31.175303984)
>>> back = gcj02_to_wgs84(lon, lat)
>>> round(float(back[0]), 9), round(float(back[1]), 9)
(121.5272106, 31.1774276)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["wgs84_to_gcj02", "gcj02_to_wgs84", "out_of_china"]

_A = 6378245.0  # m, semi-major axis used by the GCJ-02 formula (Krasovsky 1940)
_EE = 0.00669342162296594323  # first eccentricity squared used by the formula


def out_of_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where a point lies outside the box in which GCJ-02 applies an offset.

    Parameters
    ----------
    lon, lat : array_like
        Longitude and latitude, degrees.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    return (lon < 72.004) | (lon > 137.8347) | (lat < 0.8293) | (lat > 55.8271)


def _offset(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> tuple[NDArray, NDArray]:
    """GCJ-02 minus WGS 84 (Δlon, Δlat) in degrees at WGS 84 position (lon, lat)."""
    x = lon - 105.0
    y = lat - 35.0
    pi = np.pi
    common = (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat = dlat + common
    dlat = dlat + (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat = dlat + (160.0 * np.sin(y / 12.0 * pi) + 320.0 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlon = dlon + common
    dlon = dlon + (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlon = dlon + (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0

    radlat = np.radians(lat)
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(
    lon: ArrayLike, lat: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Convert WGS 84 longitude/latitude (degrees) to GCJ-02 (degrees).

    Parameters
    ----------
    lon, lat : array_like
        WGS 84 longitude and latitude, degrees; any broadcastable shapes.

    Returns
    -------
    (lon, lat) : tuple of float64 arrays
        GCJ-02 longitude and latitude, degrees.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    dlon, dlat = _offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(
    lon: ArrayLike,
    lat: ArrayLike,
    *,
    tol: float = 1e-10,
    max_iter: int = 30,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Convert GCJ-02 longitude/latitude (degrees) to WGS 84 by inverting the forward formula.

    Fixed-point iteration ``w ← w − (forward(w) − g)`` starting from ``w = g``; the offset
    changes by well under 1 % per offset length, so it converges geometrically (3–5 steps).

    Parameters
    ----------
    lon, lat : array_like
        GCJ-02 longitude and latitude, degrees.
    tol : float
        Stop when the largest correction of any point is below ``tol`` degrees.
    max_iter : int
        Upper bound on iterations; reaching it raises ``RuntimeError`` (should never happen
        for inputs inside the valid domain).

    Returns
    -------
    (lon, lat) : tuple of float64 arrays
        WGS 84 longitude and latitude, degrees, such that ``wgs84_to_gcj02`` of them reproduces
        the input within ``tol``.
    """
    glon, glat = np.broadcast_arrays(
        np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    )
    wlon = glon.copy()
    wlat = glat.copy()
    for _ in range(max_iter):
        flon, flat = wgs84_to_gcj02(wlon, wlat)
        elon = flon - glon
        elat = flat - glat
        wlon = wlon - elon
        wlat = wlat - elat
        if wlon.size == 0 or max(np.max(np.abs(elon)), np.max(np.abs(elat))) < tol:
            return wlon, wlat
    raise RuntimeError(f"GCJ-02 inversion did not converge to {tol}° in {max_iter} iterations")
