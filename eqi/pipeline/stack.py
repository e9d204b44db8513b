"""From loaded scene groups to the DN stacks and reason flags a composite reduces (:class:`CompositeInputs`).

Each date's reason flags are computed chunk by chunk, and the dates of all groups (sensors,
processing baselines) are concatenated with their own scaling; the composite masks the DN with
the flags as it reduces them.  An observation (one date at one pixel) is not usable when (reason
flags, :mod:`eqi.science.mask`):

* ``fill``: the mask band says no data, or any reflective band requested is at its nodata DN;
* ``qa_pixel:<flag>`` / ``scl:<class>``: the cloud mask flags it (:class:`MaskRules`), and
  ``buffer`` within ``buffer_px`` of such a pixel;
* ``out_of_range``: a reflective band's DN lies outside its valid range (reflectance outside
  [0, 1]; ``BandSpec.valid_range``), when ``rules.valid_range``;
* ``saturated`` / ``qa_radsat:<flag>``: QA_RADSAT flags a reflective band used as saturated
  (or terrain occlusion / dropped pixel), when ``rules.radsat`` and the items have QA_RADSAT.

Thermal (``lwir``) adds its own nodata on top, so an L2SR scene still contributes reflectance.
The reason flags are kept (``CompositeInputs.flags``) for the ``observed`` count, and counted per
reason (``CompositeInputs.reasons``) for :func:`eqi.science.composite.mask_summary`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import Any

import dask.array as da
import numpy as np
import pystac
import xarray as xr

from eqi.io.load import ItemGroup
from eqi.params import param_value
from eqi.science.composite import CompositeInputs
from eqi.science.indices import bandpass_coefficients, nir_sources, wetness_sets
from eqi.science.mask import (
    MaskRules,
    band_flags,
    bit_counts,
    buffer_flags,
    finish_flags,
    qa_pixel_flags,
    radsat_flags,
    reason_names,
    scl_flags,
)
from eqi.sensors import valid_dn_range

__all__ = ["prepare_inputs", "slice_items", "composite_options", "BOA_OFFSET_COORD"]

# per-slice Sentinel-2 BOA offset in DN decided by the data check (eqi.pipeline.checks)
BOA_OFFSET_COORD = "boa_offset_dn"


def _group_flags(
    mask_flags: np.ndarray,
    *arrays: np.ndarray,
    n_bands: int,
    nodata: Sequence[int],
    lo: Sequence[np.ndarray] | None,
    hi: Sequence[np.ndarray] | None,
    band_bits: Sequence[int],
    flag_bits: Sequence[tuple[int, int]],
    block_info: dict | None = None,
) -> np.ndarray:
    """One chunk's reason flags: mask-band flags | band fill/range | QA_RADSAT; fill exclusive.

    ``arrays`` are the ``n_bands`` reflective DN chunks, then the QA_RADSAT chunk if any.
    ``lo``/``hi`` hold each band's per-slice valid DN limits ((t,) arrays), or None to skip.
    """
    t0, t1 = block_info[0]["array-location"][0] if block_info else (0, mask_flags.shape[0])
    flags = mask_flags.astype(np.uint16, copy=True)
    for j in range(n_bands):
        dn = arrays[j]
        if lo is None or hi is None:
            flags |= band_flags(dn, nodata[j], None)
            continue
        lo_t, hi_t = lo[j][t0:t1], hi[j][t0:t1]
        if (lo_t == lo_t[0]).all() and (hi_t == hi_t[0]).all():
            flags |= band_flags(dn, nodata[j], (int(lo_t[0]), int(hi_t[0])))
        else:
            for k in range(t1 - t0):
                flags[k] |= band_flags(dn[k], nodata[j], (int(lo_t[k]), int(hi_t[k])))
    if len(arrays) > n_bands:
        flags |= radsat_flags(arrays[n_bands], band_bits, flag_bits)
    return finish_flags(flags)


def _count_block(flags: np.ndarray, *, n_bits: int) -> np.ndarray:
    """(1, 1, 1, n_bits + 1) counts of each reason bit, then of usable observations."""
    counts = np.append(bit_counts(flags, n_bits), np.count_nonzero(flags == 0))
    return counts.reshape(1, 1, 1, n_bits + 1)


def _utc_naive(value: Any) -> np.datetime64:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(value, "ns")


def slice_items(group: ItemGroup, ds: xr.Dataset) -> list[list[pystac.Item]]:
    """The items of each time slice of a loaded group (odc-stac fuses a solar day's items).

    Each item goes to the slice nearest in time (slices are whole solar days apart, fused
    items hours at most).
    """
    times = ds["time"].values.astype("datetime64[ns]")
    out: list[list[pystac.Item]] = [[] for _ in times]
    for item in group.items:
        when = item.datetime or item.common_metadata.start_datetime
        if when is None or len(times) == 0:
            continue
        k = int(np.argmin(np.abs(times - _utc_naive(when))))
        out[k].append(item)
    return out


def _slice_offsets(group: ItemGroup, ds: xr.Dataset, band: str, nt: int) -> np.ndarray:
    """Per-slice offset of ``band``: the group's, or the data check's BOA offset (Sentinel-2)."""
    base = np.full(nt, group.offset[band], dtype=np.float64)
    if BOA_OFFSET_COORD in ds.coords and group.sensor.family == "sentinel2-l2a":
        spec = group.sensor.bands[band]
        dn = np.asarray(ds.coords[BOA_OFFSET_COORD].values, dtype=np.float64)
        base = np.round(spec.offset + dn * group.scale[band], 10)
    return base


def prepare_inputs(
    groups: Sequence[ItemGroup],
    loaded: Sequence[xr.Dataset],
    bands: Sequence[str],
    *,
    rules: MaskRules,
) -> CompositeInputs:
    """Build lazy DN stacks and reason flags across groups (sensors) for ``bands``.

    A slice is usable where it carries no reason flag (see the module docstring) and its DN is
    not the band's nodata.  ``rules`` come from :func:`eqi.pipeline.masking.mask_rules`.
    """
    # a band no sensor of the run has (lwir in a Sentinel-2-only run) is left out, not all-NaN
    bands = [b for b in bands if any(b in g.bands for g in groups)]
    reflective = [b for b in bands if b != "lwir"]
    if not reflective:
        raise ValueError("a composite needs at least one reflective band")
    dn: dict[str, list[da.Array]] = {b: [] for b in bands}
    scale: dict[str, list[np.ndarray]] = {b: [] for b in bands}
    offset: dict[str, list[np.ndarray]] = {b: [] for b in bands}
    nodata: dict[str, list[np.ndarray]] = {b: [] for b in bands}
    present: dict[str, list[np.ndarray]] = {b: [] for b in bands}
    all_flags: list[da.Array] = []
    reasons: dict[str, Any] = {}
    notes: list[str] = []
    times, item_ids, sensors, slice_sensors, slice_platforms = [], [], [], [], []
    n_obs = 0
    for group, ds in zip(groups, loaded, strict=True):
        nt = ds.sizes["time"]
        data = {name: ds[name].data for name in ds.data_vars}
        sensor = group.sensor
        template = data[group.bands[0]]
        used = [b for b in group.bands if b != "lwir" and b in bands]
        use_radsat = rules.radsat and group.has_radsat
        radsat_names = [f for f in rules.radsat_flags if f in sensor.radsat_flags] if use_radsat else []
        names = reason_names(sensor.mask_kind if group.has_mask else None, rules, radsat_names)
        ids = ", ".join(i.id for i in group.items)
        if group.has_mask:
            flag_fn = qa_pixel_flags if sensor.mask_kind == "qa_pixel" else scl_flags
            bad = rules.qa_pixel_bad if sensor.mask_kind == "qa_pixel" else rules.scl_bad
            mflags = data[group.mask_alias].map_blocks(flag_fn, bad, dtype=np.uint16)
            if rules.buffer_px > 0:
                r = rules.buffer_px
                mflags = mflags.map_overlap(buffer_flags, depth=(0, r, r), radius_px=r, dtype=np.uint16)
        else:
            mflags = da.zeros(template.shape, chunks=template.chunks, dtype=np.uint16)
            notes.append(f"no {sensor.mask.native} cloud mask: clouds not masked for {ids}")
        if rules.radsat and sensor.radsat is not None and not group.has_radsat:
            notes.append(f"no {sensor.radsat.native}: saturated pixels not masked for {ids}")
        offsets = {b: _slice_offsets(group, ds, b, nt) for b in group.bands}
        lo = hi = None
        if rules.valid_range:
            lo, hi = [], []
            for b in used:
                spec = sensor.bands[b]
                rng = [valid_dn_range(spec.valid_range, group.scale[b], o) if spec.valid_range else (0, 65535)
                       for o in offsets[b]]  # fmt: skip
                lo.append(np.array([r[0] for r in rng], dtype=np.int64))
                hi.append(np.array([r[1] for r in rng], dtype=np.int64))
        arrays = [data[b] for b in used]
        band_bits = [sensor.bands[b].radsat_bit for b in used if sensor.bands[b].radsat_bit is not None]
        flag_bits = [(sensor.radsat_flags[f], names.index(f"qa_radsat:{f}")) for f in radsat_names]
        if use_radsat:
            arrays.append(data["qa_radsat"])
        flags = da.map_blocks(
            _group_flags, mflags, *arrays,
            n_bands=len(used), nodata=[int(group.nodata[b]) for b in used], lo=lo, hi=hi,
            band_bits=band_bits, flag_bits=flag_bits, dtype=np.uint16,
        )  # fmt: skip
        all_flags.append(flags)
        counts = flags.map_blocks(
            _count_block, n_bits=len(names), new_axis=[3],
            chunks=(*((1,) * len(c) for c in flags.chunks), (len(names) + 1,)), dtype=np.int64,
        ).sum(axis=(0, 1, 2))  # fmt: skip
        for i, name in enumerate((*names, "usable")):
            reasons[name] = counts[i] if name not in reasons else reasons[name] + counts[i]
        n_obs += int(np.prod(template.shape))
        for band in bands:
            if band in group.bands:
                # the DN as read: the composite applies the flags (CompositeInputs), so no
                # masked copy of every band and date is made (a tenth of an RSEI tile's CPU)
                dn[band].append(data[band].astype(np.uint16, copy=False))
                scale[band].append(np.full(nt, group.scale[band]))
                offset[band].append(offsets[band])
                nodata[band].append(np.full(nt, group.nodata[band]))
                present[band].append(np.ones(nt, dtype=bool))
            else:  # band absent for this sensor (e.g. lwir on Sentinel-2): all nodata
                dn[band].append(da.zeros(template.shape, chunks=template.chunks, dtype=np.uint16))
                scale[band].append(np.ones(nt))
                offset[band].append(np.zeros(nt))
                nodata[band].append(np.zeros(nt))
                present[band].append(np.zeros(nt, dtype=bool))
        times.extend(ds["time"].values.tolist())
        item_ids.extend(i.id for i in group.items)
        sensors.append(sensor.id)
        slice_sensors.extend([sensor.id] * nt)
        for members in slice_items(group, ds):
            platforms = sorted({str(i.properties.get("platform", "")).lower() for i in members})
            slice_platforms.append(platforms[0] if len(platforms) == 1 else "")
        notes.extend(str(n) for n in ds.attrs.get("s2_offset_check", ()))
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
        slice_sensors=tuple(slice_sensors),
        slice_platforms=tuple(slice_platforms),
        present={b: np.concatenate(present[b]) for b in bands},
        flags=da.concatenate(all_flags, axis=0),
        reasons=reasons,
        n_observations=n_obs,
        notes=tuple(notes),
        range_checked=rules.valid_range,
    )


def composite_options(
    inputs: CompositeInputs, indices_profile: Mapping[str, Any], *, wet: bool
) -> dict[str, Any]:
    """Keyword arguments of :func:`eqi.science.composite.composite` from the ``indices`` profile.

    ``wetness`` (each sensor's tasseled-cap set, when ``wet``), ``nir_source`` (Sentinel-2 NIR
    band, spec §6.1) and ``bandpass`` (HLS MSI -> OLI lines, only for composites mixing
    Landsat and Sentinel-2 and only when the profile enables it).
    """
    sensors = sorted(set(inputs.sensor_of_slices()))
    out: dict[str, Any] = {"nir_source": nir_sources(indices_profile)}
    if wet:
        out["wetness"] = wetness_sets(sensors, indices_profile)
    families = {"sentinel2" if s == "sentinel2" else "landsat" for s in sensors}
    enabled = bool(param_value(indices_profile["bandpass_adjustment"]["enabled"]))
    if enabled and families == {"sentinel2", "landsat"}:
        out["bandpass"] = bandpass_coefficients(indices_profile)
    return out
