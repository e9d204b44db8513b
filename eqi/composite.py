"""Seasonal composites: per-pixel median (and percentiles) of clear observations, per spatial block.

Input: loaded groups (integer DN, ``time=1`` chunks) from :mod:`eqi.load`.  For each band the DN
stacks of all groups are concatenated along time and rechunked to one time chunk per spatial
block; a block function then masks, scales (DN x scale + offset, per time slice, so sensors and
processing baselines can be mixed) and reduces in row strips.  Working memory is therefore bounded
by one spatial block's time series, whatever the area.

A pixel without any clear observation (or fewer than ``min_clear``) is NaN (nodata), never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.highlevelgraph import HighLevelGraph

from eqi.load import ItemGroup
from eqi.mask import qa_pixel_clear, scl_clear

__all__ = ["CompositeInputs", "prepare_inputs", "composite", "nan_quantiles"]

_STRIP_ROWS = 64  # rows per strip inside a block: bounds the float working set


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


_ODC_SHARED_LAYERS = ("open-", "cfg-")  # odc-stac/odc-loader: per-date reader, load config


def _independent_chunks(arr: da.Array) -> da.Array:
    """Copy odc-stac's shared per-date reader tasks into each chunk task of a loaded band.

    odc-stac makes every chunk of one date depend on one shared ``open-<band>`` task (plus
    ``cfg-`` constants).  With these shared roots Dask's ordering reads a date's chunks for all
    spatial blocks before reducing any block, so memory grows with the whole stack (measured:
    2.2 GiB for 64 dates of 2048 x 2048 px, ``bench/``).  Inlined, every chunk is an independent
    root and the scheduler finishes one spatial block's time series after another.  The inlined
    tasks only build a reader object (no I/O); arrays not made by odc-stac are returned unchanged.
    """
    graph = arr.__dask_graph__()
    layers = getattr(graph, "layers", None)
    if not layers or arr.name not in layers:
        return arr
    shared = [n for n in layers if n != arr.name and n.startswith(_ODC_SHARED_LAYERS)]
    if not shared or set(layers) != {arr.name, *shared}:
        return arr
    try:
        from dask._task_spec import convert_legacy_graph

        tasks = convert_legacy_graph(dict(graph))
        resolved: dict[Any, Any] = {}

        # the node with its own (shared) dependencies inlined, memoised
        def inline(key: Any) -> Any:
            if key not in resolved:
                node = tasks[key]
                deps = node.dependencies
                resolved[key] = node.substitute({d: inline(d) for d in deps}) if deps else node
            return resolved[key]

        own = {k: inline(k) for k in layers[arr.name]}
    except (ImportError, AttributeError, KeyError, TypeError):  # another dask version: no-op
        return arr
    if any(t.dependencies for t in own.values()):
        return arr
    hlg = HighLevelGraph.from_collections(arr.name, own, dependencies=())
    return da.Array(hlg, arr.name, arr.chunks, meta=arr._meta)


@dataclass(frozen=True)
class CompositeInputs:
    """Time-concatenated DN stacks, validity, and per-slice scaling of every band."""

    dn: dict[str, da.Array]  # band -> (t, y, x) integer DN, one time chunk
    valid: da.Array  # (t, y, x) bool: clear per mask and every reflective band present
    scale: dict[str, np.ndarray]  # band -> (t,) float64
    offset: dict[str, np.ndarray]
    nodata: dict[str, np.ndarray]  # band -> (t,) DN nodata value
    times: np.ndarray
    item_ids: list[str]
    sensors: list[str]


def prepare_inputs(
    groups: Sequence[ItemGroup],
    loaded: Sequence[xr.Dataset],
    bands: Sequence[str],
    *,
    qa_bad: Sequence[str],
    scl_bad: Sequence[int],
    buffer_px: int = 0,
) -> CompositeInputs:
    """Build lazy DN stacks and validity across groups (sensors) for ``bands``.

    A slice is valid where the mask says clear, and every reflective band requested is present
    (not nodata).  Thermal (``lwir``) validity is decided per band in the reducer, so an L2SR
    scene or a Sentinel-2 scene still contributes reflectance.
    """
    # a band no sensor of the run has (lwir in a Sentinel-2-only run) is left out, not all-NaN
    bands = [b for b in bands if any(b in g.bands for g in groups)]
    dn: dict[str, list[da.Array]] = {b: [] for b in bands}
    scale: dict[str, list[np.ndarray]] = {b: [] for b in bands}
    offset: dict[str, list[np.ndarray]] = {b: [] for b in bands}
    nodata: dict[str, list[np.ndarray]] = {b: [] for b in bands}
    valid_parts: list[da.Array] = []
    times, item_ids, sensors = [], [], []
    for group, ds in zip(groups, loaded, strict=True):
        nt = ds.sizes["time"]
        data = {name: _independent_chunks(ds[name].data) for name in ds.data_vars}
        if group.has_mask:
            valid = data[group.mask_alias].map_blocks(
                qa_pixel_clear if group.sensor.mask_kind == "qa_pixel" else scl_clear,
                tuple(qa_bad) if group.sensor.mask_kind == "qa_pixel" else tuple(scl_bad),
                dtype=bool,
            )
        else:
            valid = da.ones(data[group.bands[0]].shape, chunks=data[group.bands[0]].chunks, dtype=bool)
        if buffer_px > 0:
            from eqi.mask import buffer_bad

            valid = valid.map_overlap(
                buffer_bad, depth=(0, buffer_px, buffer_px), radius_px=buffer_px, dtype=bool
            )
        for band in group.bands:
            if band != "lwir" and band in bands:
                valid = valid & (data[band] != group.nodata[band])
        valid_parts.append(valid)
        template = data[group.bands[0]]
        for band in bands:
            if band in group.bands:
                dn[band].append(data[band].astype(np.uint16, copy=False))
                scale[band].append(np.full(nt, group.scale[band]))
                offset[band].append(np.full(nt, group.offset[band]))
                nodata[band].append(np.full(nt, group.nodata[band]))
            else:  # band absent for this sensor (e.g. lwir on Sentinel-2): all nodata
                dn[band].append(da.zeros(template.shape, chunks=template.chunks, dtype=np.uint16))
                scale[band].append(np.ones(nt))
                offset[band].append(np.zeros(nt))
                nodata[band].append(np.zeros(nt))
        times.extend(ds["time"].values.tolist())
        item_ids.extend(i.id for i in group.items)
        sensors.append(group.sensor.id)
    order = np.argsort(np.array(times, dtype="datetime64[ns]"), kind="stable")

    in_order = bool(np.all(order == np.arange(order.size)))

    def stack(parts: list[da.Array]) -> da.Array:
        joined = da.concatenate(parts, axis=0)
        if not in_order:  # a take copies every chunk: only when groups interleave in time
            joined = joined[order]
        return joined.rechunk({0: -1})

    return CompositeInputs(
        dn={b: stack(dn[b]) for b in bands},
        valid=stack(valid_parts),
        scale={b: np.concatenate(scale[b])[order] for b in bands},
        offset={b: np.concatenate(offset[b])[order] for b in bands},
        nodata={b: np.concatenate(nodata[b])[order] for b in bands},
        times=np.array(times, dtype="datetime64[ns]")[order],
        item_ids=sorted(item_ids),
        sensors=sorted(set(sensors)),
    )


def _reduce_block(
    dn: np.ndarray,
    valid: np.ndarray,
    *,
    scale: np.ndarray,
    offset: np.ndarray,
    nodata: np.ndarray,
    quantiles: tuple[float, ...],
    min_clear: int,
) -> np.ndarray:
    """(t, y, x) DN + validity -> (q, y, x) float32 physical values, strip by strip."""
    nq = len(quantiles)
    out = np.full((nq, *dn.shape[1:]), np.nan, dtype=np.float32)
    s = scale.astype(np.float32)[:, None, None]
    o = offset.astype(np.float32)[:, None, None]
    nd = nodata[:, None, None]
    for r0 in range(0, dn.shape[1], _STRIP_ROWS):
        sl = slice(r0, r0 + _STRIP_ROWS)
        d = dn[:, sl]
        ok = valid[:, sl] & (d != nd)
        values = np.where(ok, d.astype(np.float32) * s + o, np.float32(np.nan))
        q = nan_quantiles(values, quantiles)
        if min_clear > 1:
            q[:, ok.sum(axis=0) < min_clear] = np.nan
        out[:, sl] = q
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
        reduced = da.map_blocks(
            _reduce_block,
            stack,
            inputs.valid,
            scale=inputs.scale[band],
            offset=inputs.offset[band],
            nodata=inputs.nodata[band],
            quantiles=quantiles,
            min_clear=min_clear,
            chunks=((len(quantiles),), *stack.chunks[1:]),
            dtype=np.float32,
        )
        result[band] = (("y", "x"), reduced[0])
        for i, p in enumerate(percentiles, start=1):
            result[f"{band}_p{p:g}"] = (("y", "x"), reduced[i])
    count = inputs.valid.sum(axis=0, dtype=np.uint16)
    result["count"] = (("y", "x"), count)
    ds = xr.Dataset({k: xr.DataArray(v, dims=d) for k, (d, v) in result.items()})
    ds.attrs["item_ids"] = inputs.item_ids
    ds.attrs["sensors"] = inputs.sensors
    ds.attrs["n_slices"] = int(len(inputs.times))
    return ds
