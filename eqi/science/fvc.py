"""Fractional vegetation cover (FVC, 植被覆盖度) by the pixel dichotomy model (spec §5.1).

FVC = (NDVI - NDVI_soil) / (NDVI_veg - NDVI_soil), clipped to [0, 1].  NDVI_soil / NDVI_veg are
the ``p_soil`` / ``p_veg`` cumulative percentiles (default 5 / 95, [U]) of NDVI over valid land
pixels (finite NDVI, not in the optional water mask), or the fixed values 0.15 / 0.90 ([V-impl])
from ``configs/methods/fvc.yaml``.  The percentile method falls back to the fixed values when too
few valid pixels exist or the percentile spread is degenerate; :class:`FvcBounds` records which.

Percentiles are exact (``numpy.percentile``, linear interpolation) over all valid values: on a
Dask array the valid NDVI values are gathered into memory as one float32 vector (4 bytes per
valid pixel, ~22 MB for a 5 000 km² county at 30 m).  The result does not depend on chunking,
since a percentile does not depend on the order of the values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import dask
import numpy as np
import xarray as xr

from eqi.errors import ConfigError, InputError
from eqi.params import param_value

__all__ = ["FvcBounds", "fvc_bounds", "fvc", "NDVI_BINS", "ndvi_histogram", "fvc_bounds_from_histogram"]

Method = Literal["percentile", "fixed"]


@dataclass(frozen=True)
class FvcBounds:
    """NDVI end-members used for FVC, with how they were obtained (for product metadata)."""

    ndvi_soil: float
    ndvi_veg: float
    method: Method
    p_soil: float | None = None
    p_veg: float | None = None
    n_valid: int | None = None
    fallback_reason: str | None = None

    def to_metadata(self) -> dict[str, Any]:
        """Plain dict for the product's metadata JSON."""
        return asdict(self)


def _value(params: Mapping[str, Any], key: str) -> float:
    return float(param_value(params[key]))


def _as_list(x: Any) -> list[Any]:
    if x is None:
        return []
    if isinstance(x, xr.DataArray):
        return [x]
    return list(x)


def _valid_values(ndvi: xr.DataArray, water: xr.DataArray | None) -> Any:
    """Lazy or eager 1-D vector of finite NDVI values outside the water mask."""
    ok = np.isfinite(ndvi)
    if water is not None:
        ok = ok & ~water.astype(bool)
    return ndvi.astype(np.float32).data[ok.data]


def fvc_bounds(
    ndvi: xr.DataArray | Sequence[xr.DataArray],
    water_mask: xr.DataArray | Sequence[xr.DataArray | None] | None = None,
    *,
    method: Method | None = None,
    params: Mapping[str, Any] | None = None,
) -> FvcBounds:
    """Determine NDVI_soil and NDVI_veg (unitless NDVI).

    Parameters
    ----------
    ndvi
        NDVI of one year, or a sequence of years on any grids (pooled distribution, spec §5.1:
        fixes the end-members for a multi-year series).
    water_mask
        Boolean mask (True = water, snow or otherwise excluded), one per NDVI array, or None.
    method
        ``"percentile"`` or ``"fixed"``; default from ``fvc.yaml``.
    params
        Parameter profile; default ``configs/methods/fvc.yaml``.
    """
    if params is None:
        raise TypeError("pass the 'fvc' method profile (eqi.resources.load_profile('fvc'))")

    def data() -> tuple[int, Callable[[float], float]]:
        arrays = _as_list(ndvi)
        waters = _as_list(water_mask) or [None] * len(arrays)
        if len(waters) != len(arrays):
            raise InputError(
                f"got {len(arrays)} NDVI arrays but {len(waters)} water masks; pass one per year"
            )
        parts = dask.compute(*[_valid_values(a, w) for a, w in zip(arrays, waters, strict=True)])
        values = np.concatenate([np.asarray(v, dtype=np.float32).ravel() for v in parts]).astype(np.float64)
        return int(values.size), lambda q: float(np.percentile(values, q))

    return _bounds(params, method, data)


def _bounds(
    p: Mapping[str, Any], method: Method | None, data: Callable[[], tuple[int, Callable[[float], float]]]
) -> FvcBounds:
    """The end-members by the profile's rules; ``data()`` gives the number of valid land pixels
    and their percentile function (only called for the percentile method)."""
    method = method or p["method"]
    fixed_soil, fixed_veg = _value(p, "ndvi_soil_fixed"), _value(p, "ndvi_veg_fixed")
    if method == "fixed":
        return FvcBounds(fixed_soil, fixed_veg, "fixed")
    if method != "percentile":
        raise ConfigError(f"fvc method {method!r} is unknown; use 'percentile' or 'fixed'")
    p_soil, p_veg = _value(p, "p_soil"), _value(p, "p_veg")
    if not 0.0 <= p_soil < p_veg <= 100.0:
        raise ConfigError(
            f"fvc percentiles must satisfy 0 <= p_soil < p_veg <= 100, got {p_soil}, {p_veg}"
        )
    n_valid, percentile = data()

    def fallback(reason: str) -> FvcBounds:
        return FvcBounds(fixed_soil, fixed_veg, "fixed", p_soil, p_veg, n_valid, reason)

    if n_valid < _value(p, "min_valid_pixels"):
        return fallback(f"only {n_valid} valid land pixels (< min_valid_pixels)")
    lo, hi = percentile(p_soil), percentile(p_veg)
    if hi - lo < _value(p, "min_spread"):
        return fallback(f"percentile spread {hi - lo:.4f} < min_spread")
    return FvcBounds(lo, hi, "percentile", p_soil, p_veg, n_valid)


NDVI_BINS = 20_000  # histogram bins over NDVI [-1, 1]: 1e-4 NDVI per bin


def ndvi_histogram(ndvi: np.ndarray, water: np.ndarray | None = None) -> np.ndarray:
    """Counts of finite NDVI outside ``water`` in :data:`NDVI_BINS` equal bins over [-1, 1] (int64).

    Histograms of tiles and years add up, so end-members over a whole evaluation area and period
    are found in bounded memory (:func:`fvc_bounds_from_histogram`).
    """
    values = np.asarray(ndvi, dtype=np.float64)
    ok = np.isfinite(values)
    if water is not None:
        ok &= ~np.asarray(water, dtype=bool)
    counts, _ = np.histogram(np.clip(values[ok], -1.0, 1.0), bins=NDVI_BINS, range=(-1.0, 1.0))
    return counts.astype(np.int64)


def _histogram_percentile(counts: np.ndarray, q: float) -> float:
    """Percentile ``q`` (0-100) of the values behind ``counts``, NumPy's linear definition.

    The k-th order statistic is placed uniformly inside its bin, so the result is within one bin
    width (1e-4 NDVI) of ``numpy.percentile`` over the raw values.
    """
    n = int(counts.sum())
    width = 2.0 / counts.size
    rank = q / 100.0 * (n - 1)  # 0-based fractional rank
    cum = np.cumsum(counts)

    def order_stat(k: int) -> float:
        b = int(np.searchsorted(cum, k + 1))  # bin holding the k-th value
        before = int(cum[b - 1]) if b else 0
        return -1.0 + width * (b + (k - before + 0.5) / counts[b])

    lo = int(np.floor(rank))
    hi = min(lo + 1, n - 1)
    return order_stat(lo) + (order_stat(hi) - order_stat(lo)) * (rank - lo)


def fvc_bounds_from_histogram(
    counts: np.ndarray, *, method: Method | None = None, params: Mapping[str, Any]
) -> FvcBounds:
    """NDVI_soil and NDVI_veg from an NDVI histogram (:func:`ndvi_histogram`, summed over tiles
    and years); the same rules and fallbacks as :func:`fvc_bounds`."""
    counts = np.asarray(counts, dtype=np.int64)
    bounds = _bounds(params, method, lambda: (int(counts.sum()), lambda q: _histogram_percentile(counts, q)))
    if bounds.method == "percentile":  # one bin is 1e-4 NDVI: more digits would be noise
        bounds = replace(bounds, ndvi_soil=round(bounds.ndvi_soil, 6), ndvi_veg=round(bounds.ndvi_veg, 6))
    return bounds


def fvc(
    ndvi: xr.DataArray,
    water_mask: xr.DataArray | None = None,
    *,
    bounds: FvcBounds | None = None,
    method: Method | None = None,
    params: Mapping[str, Any] | None = None,
) -> tuple[xr.DataArray, FvcBounds]:
    """FVC (fraction 0-1, float32) from NDVI by the pixel dichotomy model.

    ``bounds`` (e.g. pooled over years with :func:`fvc_bounds`) skips the percentile step.  The
    water mask only excludes pixels from the percentiles; FVC itself is computed wherever NDVI is
    finite (water then clips to 0).  NaN NDVI gives NaN FVC.  Returns ``(fvc, bounds)``.
    """
    if bounds is None:
        bounds = fvc_bounds(ndvi, water_mask, method=method, params=params)
    if not bounds.ndvi_veg > bounds.ndvi_soil:
        raise ConfigError(
            f"NDVI_veg ({bounds.ndvi_veg}) must exceed NDVI_soil ({bounds.ndvi_soil}); check fvc.yaml"
        )
    soil = np.float32(bounds.ndvi_soil)
    span = np.float32(bounds.ndvi_veg - bounds.ndvi_soil)
    out = ((ndvi.astype(np.float32, copy=False) - soil) / span).clip(0.0, 1.0)
    out = out.astype(np.float32, copy=False)
    out.name = "fvc"
    out.attrs = {
        "long_name": "Fractional vegetation cover",
        "units": "1",
        "valid_range": [0.0, 1.0],
        "ndvi_soil": bounds.ndvi_soil,
        "ndvi_veg": bounds.ndvi_veg,
        "fvc_bounds_method": bounds.method,
    }
    return out, bounds
