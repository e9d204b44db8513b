"""Checks of loaded scenes against their metadata: the Sentinel-2 BOA offset.

Sentinel-2 L2A from processing baseline 04.00 stores DN = 10000 x reflectance + 1000
(BOA_ADD_OFFSET = -1000).  eqi decides the offset from the item's metadata
(:func:`eqi.sensors.s2_boa_offset_dn`), but catalogs have items whose flags are wrong
(Element84/earth-search#66, #71: ``earthsearch:boa_offset_applied`` false although the pixels
are already offset-corrected), so the pixels are checked per scene.

Statistic (settings in ``configs/methods/mask.yaml``, ``sentinel2_offset_check``): over the
dark reference surfaces of the scene's own SCL (vegetation, water), the fraction of blue (or red)
DN below 1000.  With the +1000 offset in the pixels such DN are negative reflectance, which is
rare over vegetation and water; without it they are the majority (reflectance below 0.1).  The
statistic is taken on a subsample: a few spatial chunks per scene, every ``stride``-th pixel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from eqi.errors import ConfigError, ScalingError
from eqi.io.load import ItemGroup
from eqi.params import param_value
from eqi.pipeline.stack import BOA_OFFSET_COORD, slice_items
from eqi.sensors import s2_offset_evidence

__all__ = ["check_s2_offset", "offset_statistic"]

_MODES = ("error", "use-data", "off")


def _spread(n_y: int, n_x: int, max_blocks: int) -> list[tuple[int, int]]:
    """Up to ``max_blocks`` chunk indices spread evenly over an ``n_y`` x ``n_x`` chunk grid."""
    cells = [(iy, ix) for iy in range(n_y) for ix in range(n_x)]
    if len(cells) <= max_blocks:
        return cells
    picks = np.linspace(0, len(cells) - 1, max_blocks).round().astype(int)
    return [cells[i] for i in sorted(set(picks.tolist()))]


def _lazy(data: Any) -> da.Array:
    """A loaded band as a Dask array with one chunk per date (NumPy-backed Datasets too)."""
    return data if isinstance(data, da.Array) else da.from_array(data, chunks=(1, -1, -1))


def offset_statistic(
    dn: np.ndarray, scl: np.ndarray, *, classes: tuple[int, ...], threshold_dn: int, nodata: int = 0
) -> tuple[int, float]:
    """``(n, fraction)``: reference pixels (SCL in ``classes``, DN not nodata) and the fraction of
    them with DN below ``threshold_dn``."""
    ref = np.isin(scl, classes) & (dn != nodata)
    n = int(ref.sum())
    return n, (float((dn[ref] < threshold_dn).mean()) if n else float("nan"))


def _verdict(n: int, low: float, p: Mapping[str, Any]) -> bool | None:
    """True = the pixels carry the +1000 offset, False = they do not, None = cannot tell."""
    if n < int(param_value(p["min_pixels"])):
        return None
    if low <= float(param_value(p["shifted_max_low_fraction"])):
        return True
    if low >= float(param_value(p["unshifted_min_low_fraction"])):
        return False
    return None


def check_s2_offset(group: ItemGroup, ds: xr.Dataset, params: Mapping[str, Any]) -> xr.Dataset:
    """Check a loaded Sentinel-2 group's BOA offset against its pixels, scene by scene.

    Parameters
    ----------
    group, ds
        An item group and its loaded Dataset (:func:`eqi.io.load.load_group`); other sensors are
        returned unchanged.
    params
        ``sentinel2_offset_check`` of the mask profile
        (:func:`eqi.pipeline.masking.s2_offset_check_params`).

    Returns
    -------
    The Dataset with ``attrs["s2_offset_check"]`` (one note per scene for the metadata) and, in
    mode ``use-data`` when the pixels disagree with the metadata, the coordinate
    ``boa_offset_dn`` (time) that :func:`eqi.pipeline.stack.prepare_inputs` applies instead of
    the metadata's offset.

    Raises
    ------
    ScalingError
        In mode ``error`` (the default), when a scene's pixels contradict its metadata; the
        message names the scene, the evidence and the fix (``--s2-boa-offset``).
    """
    if group.sensor.family != "sentinel2-l2a":
        return ds
    mode = str(param_value(params["mode"]))
    if mode not in _MODES:
        raise ConfigError(f"mask sentinel2_offset_check.mode must be one of {', '.join(_MODES)}, got {mode!r}")
    if mode == "off":
        return ds
    notes: list[str] = []
    out = ds.copy()
    band = next((b for b in params["bands"] if b in group.bands), None)
    if band is None or not group.has_mask:
        why = "no SCL band" if not group.has_mask else f"none of the bands {list(params['bands'])} loaded"
        out.attrs["s2_offset_check"] = [f"BOA offset check skipped for {len(group.items)} scene(s): {why}"]
        return out
    scale = group.scale[band]
    meta_dn = int(round(group.offset[band] / scale))  # 0 or -1000
    classes = tuple(int(c) for c in params["reference_scl_classes"])
    threshold = int(param_value(params["threshold_dn"]))
    stride = max(1, int(param_value(params["stride"])))
    arr, scl = (_lazy(ds[name].data) for name in (band, group.mask_alias))
    cells = _spread(arr.numblocks[1], arr.numblocks[2], int(param_value(params["max_blocks"])))
    nt = ds.sizes["time"]
    lazy = [
        (arr.blocks[t, iy, ix][0, ::stride, ::stride], scl.blocks[t, iy, ix][0, ::stride, ::stride])
        for t in range(nt)
        for iy, ix in cells
    ]
    values = dask.compute(*lazy)
    members = slice_items(group, ds)
    offsets = np.full(nt, meta_dn, dtype=np.int64)
    per = len(cells)
    for t in range(nt):
        chunk = values[t * per : (t + 1) * per]
        dn = np.concatenate([c[0].ravel() for c in chunk])
        cls = np.concatenate([c[1].ravel() for c in chunk])
        n, low = offset_statistic(dn, cls, classes=classes, threshold_dn=threshold, nodata=group.nodata[band])
        ids = ", ".join(i.id for i in members[t]) or f"slice {t}"
        data_shifted = _verdict(n, low, params)
        stat = f"{low:.0%} of {n} sampled {band} DN over SCL {list(classes)} below {threshold}" if n else "no reference pixels sampled"
        if data_shifted is None:
            notes.append(f"{ids}: BOA offset check inconclusive ({stat}); metadata offset {meta_dn} DN kept")
            continue
        data_dn = -1000 if data_shifted else 0
        if data_dn == meta_dn:
            notes.append(f"{ids}: BOA offset {meta_dn} DN confirmed by the pixels ({stat})")
            continue
        evidence = "; ".join(f"{i.id}: {s2_offset_evidence(i)}" for i in members[t]) or "no items"
        if mode == "use-data":
            offsets[t] = data_dn
            notes.append(
                f"{ids}: BOA offset {data_dn} DN taken from the pixels ({stat}); the metadata "
                f"({evidence}) gave {meta_dn} DN"
            )
            continue
        looks = (
            "carry the +1000 DN offset (values below 1000 DN, i.e. negative reflectance, are rare)"
            if data_shifted
            else "are already offset-corrected (most values are below 1000 DN, which would be "
            "negative reflectance after subtracting the offset)"
        )
        raise ScalingError(
            f"Sentinel-2 scene {ids}: the metadata give a BOA offset of {meta_dn} DN ({evidence}), "
            f"but its pixels {looks}: {stat}. Catalog flags are known to be wrong for some items "
            "(Element84/earth-search#66, #71). If every Sentinel-2 scene of the run is like this, "
            f"rerun with --s2-boa-offset {data_dn} (config 's2_boa_offset: {data_dn}'); to let the "
            "pixels decide scene by scene, set 'mask: {s2_offset_check: use-data}' in the run config."
        )
    out.attrs["s2_offset_check"] = notes
    if (offsets != meta_dn).any():
        out = out.assign_coords({BOA_OFFSET_COORD: ("time", offsets)})
    return out
