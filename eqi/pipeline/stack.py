"""From loaded scene groups to the masked DN stacks a composite reduces (:class:`CompositeInputs`).

Each date's DN is masked (not usable -> nodata) chunk by chunk with the group's mask scheme, and
the dates of all groups (sensors, processing baselines) are concatenated with their own scaling.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask.array as da
import numpy as np
import xarray as xr

from eqi.io.load import ItemGroup
from eqi.science.composite import CompositeInputs
from eqi.science.mask import MaskRules, buffer_bad, qa_pixel_clear, scl_clear

__all__ = ["prepare_inputs"]


def _masked(dn: np.ndarray, ok: np.ndarray, *, nodata: int) -> np.ndarray:
    """DN where the observation is usable, ``nodata`` elsewhere (same dtype)."""
    return np.where(ok, dn, np.asarray(nodata, dtype=dn.dtype))


def prepare_inputs(
    groups: Sequence[ItemGroup],
    loaded: Sequence[xr.Dataset],
    bands: Sequence[str],
    *,
    rules: MaskRules,
) -> CompositeInputs:
    """Build lazy masked DN stacks across groups (sensors) for ``bands``.

    A slice is usable where the mask says clear and every reflective band requested is present
    (not nodata); elsewhere each band's DN is set to its nodata value.  Thermal (``lwir``) adds
    its own nodata on top, so an L2SR scene still contributes reflectance.
    """
    # a band no sensor of the run has (lwir in a Sentinel-2-only run) is left out, not all-NaN
    bands = [b for b in bands if any(b in g.bands for g in groups)]
    dn: dict[str, list[da.Array]] = {b: [] for b in bands}
    scale: dict[str, list[np.ndarray]] = {b: [] for b in bands}
    offset: dict[str, list[np.ndarray]] = {b: [] for b in bands}
    nodata: dict[str, list[np.ndarray]] = {b: [] for b in bands}
    times, item_ids, sensors = [], [], []
    for group, ds in zip(groups, loaded, strict=True):
        nt = ds.sizes["time"]
        data = {name: ds[name].data for name in ds.data_vars}
        if group.has_mask:
            valid = data[group.mask_alias].map_blocks(
                qa_pixel_clear if group.sensor.mask_kind == "qa_pixel" else scl_clear,
                rules.qa_pixel_bad if group.sensor.mask_kind == "qa_pixel" else rules.scl_bad,
                dtype=bool,
            )
        else:
            valid = da.ones(data[group.bands[0]].shape, chunks=data[group.bands[0]].chunks, dtype=bool)
        if rules.buffer_px > 0:
            valid = valid.map_overlap(
                buffer_bad, depth=(0, rules.buffer_px, rules.buffer_px), radius_px=rules.buffer_px, dtype=bool
            )
        for band in group.bands:
            if band != "lwir" and band in bands:
                valid = valid & (data[band] != group.nodata[band])
        template = data[group.bands[0]]
        for band in bands:
            if band in group.bands:
                masked = da.map_blocks(
                    _masked, data[band].astype(np.uint16, copy=False), valid,
                    nodata=int(group.nodata[band]), dtype=np.uint16,
                )
                dn[band].append(masked)
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
    reflective = [b for b in bands if b != "lwir"]
    if not reflective:
        raise ValueError("a composite needs at least one reflective band")
    # slices stay in group order: quantiles and counts do not depend on the order of the dates
    return CompositeInputs(
        dn={b: da.concatenate(dn[b], axis=0) for b in bands},
        count_band=reflective[0],
        scale={b: np.concatenate(scale[b]) for b in bands},
        offset={b: np.concatenate(offset[b]) for b in bands},
        nodata={b: np.concatenate(nodata[b]) for b in bands},
        times=np.array(times, dtype="datetime64[ns]"),
        item_ids=sorted(item_ids),
        sensors=sorted(set(sensors)),
    )


