"""Seasonal composites: per-pixel median (and percentiles) of clear observations, per spatial block.

Input: :class:`CompositeInputs`, masked integer DN stacks (one chunk per date) built by
:mod:`eqi.pipeline.stack` from the loaded scenes.  A
block function receives the list of a spatial block's date chunks (no concatenated copy), scales
them (DN x scale + offset, per date, so sensors and processing baselines can be mixed) and
reduces them in row strips.  Working memory is therefore bounded by one spatial block's time
series, whatever the area.

A pixel without any clear observation (or fewer than ``min_clear``) is NaN (nodata), never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
import xarray as xr

__all__ = ["CompositeInputs", "composite", "nan_quantiles"]

_STRIP_ROWS = 32  # rows per strip inside a block: bounds the float working set


def nan_quantiles(values: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """Quantiles along axis 0 ignoring NaN, NumPy's "linear" method (median = q 0.5).

    Parameters
    ----------
    values : float array (t, ...), NaN = missing.
    quantiles : fractions in [0, 1].

    Returns
    -------
    float32 array (len(quantiles), ...); NaN where a pixel has no valid value.

    Sorting puts NaN last, so the k-th valid value of a pixel is at index k; this is exact and
    equals ``np.nanquantile`` while being several times faster on (t, y, x) stacks.
    """
    ordered = np.sort(values, axis=0)
    count = np.sum(~np.isnan(values), axis=0)
    out = np.full((len(quantiles), *values.shape[1:]), np.nan, dtype=np.float32)
    has = count > 0
    last = np.maximum(count - 1, 0)
    for i, q in enumerate(quantiles):
        pos = q * last
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, last)
        frac = (pos - lo).astype(np.float32)
        v_lo = np.take_along_axis(ordered, lo[None], axis=0)[0]
        v_hi = np.take_along_axis(ordered, hi[None], axis=0)[0]
        value = v_lo + (v_hi - v_lo) * frac
        out[i] = np.where(has, value, np.nan)
    return out


@dataclass(frozen=True)
class CompositeInputs:
    """Date-concatenated, already masked DN stacks and per-slice scaling of every band.

    A slice's DN is its nodata value wherever that observation is not usable (cloud, shadow,
    fill, or any reflective band missing), so the stacks alone carry the validity.
    """

    dn: dict[str, da.Array]  # band -> (t, y, x) masked integer DN, one chunk per date
    count_band: str  # a reflective band: its valid slices are the clear observations
    scale: dict[str, np.ndarray]  # band -> (t,) float64
    offset: dict[str, np.ndarray]
    nodata: dict[str, np.ndarray]  # band -> (t,) DN nodata value
    times: np.ndarray
    item_ids: list[str]
    sensors: list[str]


def _reduce_block(
    dn: np.ndarray | list[np.ndarray],
    *,
    scale: np.ndarray,
    offset: np.ndarray,
    nodata: np.ndarray,
    quantiles: tuple[float, ...],
    min_clear: int,
    with_count: bool = False,
) -> np.ndarray:
    """(t, y, x) masked DN -> (q, y, x) float32 physical values, strip by strip.

    ``dn`` may also be the list of the block's time chunks (Dask ``concatenate=False``): strips
    are then gathered from the chunks, so the whole time series is never copied at once.  With
    ``with_count`` a last layer holds the number of usable slices (the clear-observation count),
    so the stack is read by one task only.
    """
    parts = dn if isinstance(dn, list) else [dn]
    height, width = parts[0].shape[1:]
    nq = len(quantiles)
    out = np.full((nq + with_count, height, width), np.nan, dtype=np.float32)
    s = scale.astype(np.float32)[:, None, None]
    o = offset.astype(np.float32)[:, None, None]
    nd = nodata[:, None, None]
    for r0 in range(0, height, _STRIP_ROWS):
        sl = slice(r0, r0 + _STRIP_ROWS)
        d = np.concatenate([p[:, sl] for p in parts]) if len(parts) > 1 else parts[0][:, sl]
        ok = d != nd
        values = np.where(ok, d.astype(np.float32) * s + o, np.float32(np.nan))
        q = nan_quantiles(values, quantiles)
        clear = ok.sum(axis=0)
        if min_clear > 1:
            q[:, clear < min_clear] = np.nan
        out[:nq, sl] = q
        if with_count:
            out[nq, sl] = clear
    return out


def composite(
    inputs: CompositeInputs,
    *,
    percentiles: Sequence[float] = (),
    min_clear: int = 1,
) -> xr.Dataset:
    """Median (and percentiles) per band plus the clear-observation count.

    Returns a Dataset with float32 ``<band>`` medians, ``<band>_p<NN>`` percentiles and
    ``count`` (uint16 number of clear observations), dims ``(y, x)`` without coordinates — the
    caller attaches the GeoBox.
    """
    quantiles = (0.5, *(p / 100.0 for p in percentiles))
    result: dict[str, tuple[tuple[str, str], da.Array]] = {}
    for band, stack in inputs.dn.items():
        with_count = band == inputs.count_band
        reduced = da.blockwise(
            _reduce_block, "qyx", stack, "tyx",
            new_axes={"q": len(quantiles) + with_count},
            with_count=with_count,
            concatenate=False,
            scale=inputs.scale[band],
            offset=inputs.offset[band],
            nodata=inputs.nodata[band],
            quantiles=quantiles,
            min_clear=min_clear,
            dtype=np.float32,
            meta=np.empty((0, 0, 0), dtype=np.float32),
        )
        result[band] = (("y", "x"), reduced[0])
        for i, p in enumerate(percentiles, start=1):
            result[f"{band}_p{p:g}"] = (("y", "x"), reduced[i])
        if with_count:
            result["count"] = (("y", "x"), reduced[len(quantiles)].astype(np.uint16))
    ds = xr.Dataset({k: xr.DataArray(v, dims=d) for k, (d, v) in result.items()})
    ds.attrs["item_ids"] = inputs.item_ids
    ds.attrs["sensors"] = inputs.sensors
    ds.attrs["n_slices"] = int(len(inputs.times))
    return ds
