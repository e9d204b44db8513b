"""Checks before and during a run: the plan (before anything is written) and loaded scenes.

Plan checks (:func:`check_plan`, called by :func:`eqi.pipeline.run.run` before the output folder
is created or locked): the output folder can be created and written, the grid is not far finer
than the collections' native pixels, the pixel count is within ``plan_checks.max_pixels``, and
the free disk holds the estimated outputs (:func:`estimate_outputs`).  Each failure is a
:class:`~eqi.errors.ConfigError` / :class:`~eqi.errors.InputError` (exit 2) with one message;
``--force`` accepts a plan beyond the size limits knowingly.  (The source is opened and probed by
:func:`eqi.pipeline.run.run` too, when the run needs it.)

Scene checks: the Sentinel-2 BOA offset.

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

import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from eqi.errors import ConfigError, InputError, ScalingError
from eqi.io.load import ItemGroup
from eqi.params import param_value
from eqi.pipeline.plan import Plan
from eqi.pipeline.stack import BOA_OFFSET_COORD, slice_items
from eqi.products import ECOSYSTEM_QUALITY, spec_for
from eqi.sensors import KNOWN_COLLECTIONS, SENSORS, s2_offset_evidence

__all__ = [
    "check_s2_offset",
    "offset_statistic",
    "PlanLimits",
    "PlanEstimate",
    "estimate_outputs",
    "native_resolution",
    "check_output_folder",
    "check_plan",
]

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


# ------------------------------------------------------------------------------ plan checks


@dataclass(frozen=True)
class PlanLimits:
    """The limits of a plan (config ``plan_checks``; defaults and meaning in docs/operations.md).

    ``max_pixels``: pixels of the area's tiles per year; ``max_upsampling``: finest native pixel
    size of the collections / the run's pixel size; ``disk_factor``: multiplies the uncompressed
    estimate; ``disk_reserve_bytes``: left free beyond it.
    """

    max_pixels: float = 2e10
    max_upsampling: float = 4.0
    disk_factor: float = 1.0
    disk_reserve_bytes: float = 1e9


@dataclass(frozen=True)
class PlanEstimate:
    """What a run plans to write: pixels of its grid and bytes of the outputs still to compute."""

    tiles: int  # tiles of the area(s) (each once)
    years: int
    tile_px: int
    pixels_per_year: int  # tiles x tile_px^2
    bytes: int  # uncompressed bytes of the outputs not yet written (x disk_factor)
    tasks_to_write: int  # tile, apply and region tasks without their item.json

    def describe(self) -> str:
        return (f"{self.tiles} tile(s) of {self.tile_px} x {self.tile_px} px x {self.years} year(s) = "
                f"{self.pixels_per_year:,} px per year; outputs still to write <= {_size(self.bytes)}")  # fmt: skip


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def _bytes_per_pixel(names: Sequence[str]) -> int:
    """Sum of the dtype sizes of the named products (4 for a name the registry cannot size)."""
    total = 0
    for name in names:
        try:
            total += np.dtype(spec_for(name).dtype).itemsize
        except (ConfigError, TypeError):
            total += 4
    return total


def estimate_outputs(plans: Sequence[Plan], *, overwrite: bool = False, disk_factor: float = 1.0) -> PlanEstimate:
    """Pixels and bytes a run plans to write, from the plan alone (no raster I/O).

    Bytes, uncompressed: for every tile x year without its item.json (all with ``overwrite``),
    ``tile_px^2 x`` the dtype sizes of the tile products, and of the fitted products; for every
    region x year task to write, ``tiles of the region x tile_px^2 x`` the dtype sizes of its
    outputs, once for the clipped COG (the VRT is a few KB).  Times ``disk_factor``.  COGs are
    DEFLATE-compressed and regions are clipped, so the true size is usually well below this.
    """
    tiles: set[Any] = set()
    total = 0
    to_write = 0
    first = plans[0]
    px = first.stack.grid.tile_px**2

    def todo(item: Path) -> bool:
        return overwrite or not item.is_file()

    seen_tiles: set[tuple[int, Any]] = set()
    for p in plans:
        tiles.update(p.tiles)
        per_tile = _bytes_per_pixel(p.tile_products) * px
        per_apply = _bytes_per_pixel(p.fitted_products) * px
        per_region = _bytes_per_pixel(p.outputs) * px
        for year in p.years:
            for tile in p.tiles:
                if (year, tile) not in seen_tiles and todo(p.tile_dir(year, tile) / "item.json"):
                    total += per_tile
                    to_write += 1
                seen_tiles.add((year, tile))
                if p.fitted_products and todo(p.apply_dir(year, tile) / "item.json"):
                    total += per_apply
                    to_write += 1
            for region in p.area.regions:
                if todo(p.region_dir(region, year) / "item.json"):
                    total += per_region * len(p.region_tiles[region.name])
                    to_write += 1
    return PlanEstimate(
        tiles=len(tiles), years=len(first.years), tile_px=first.stack.grid.tile_px,
        pixels_per_year=len(tiles) * px, bytes=int(math.ceil(total * disk_factor)), tasks_to_write=to_write,
    )  # fmt: skip


def native_resolution(collections: Sequence[str]) -> float | None:
    """The finest reflectance pixel size (m) of the sensors the collections hold (Sentinel-2:
    10, Landsat: 30), or None when none is known."""
    families = {KNOWN_COLLECTIONS.get(c) for c in collections}
    sizes = [
        band.resolution_m
        for sensor in SENSORS.values() if sensor.family in families
        for band in sensor.bands.values() if band.kind == "reflectance"
    ]  # fmt: skip
    return min(sizes) if sizes else None


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_folder(out: Path) -> Path:
    """Check that ``out`` exists as a writable folder or can be created; creates nothing.

    Returns the folder whose free space the outputs use (``out`` or its nearest existing
    ancestor).  Raises :class:`~eqi.errors.InputError` naming the path and why.
    """
    out = Path(os.path.abspath(out))
    base = _existing_ancestor(out)
    if base == out and not out.is_dir():
        raise InputError(f"output folder {out} exists and is not a folder; choose another --out")
    if not base.is_dir():
        raise InputError(f"output folder {out} cannot be created: {base} is a file, not a folder; "
                         "choose another --out")  # fmt: skip
    try:  # the only sure test (root, read-only mounts, ACLs, /proc): a probe, removed at once
        probe = tempfile.mkdtemp(prefix=".eqi-probe-", dir=base)
    except OSError as exc:
        what = "written" if base == out else f"created in {base}"
        raise InputError(f"output folder {out} cannot be {what}: {exc.strerror or exc}; choose "
                         "another --out or fix the permissions") from None  # fmt: skip
    os.rmdir(probe)
    return base


# ecosystem quality (eqi.pipeline.eq_stage) holds, per assessed year, its parameters (LAI, FVC,
# NPP), the ecosystem types and the reference mask of the whole area as float32, plus the pooled
# copy the reference quantiles are taken from: about this many bytes per pixel and year
EQ_BYTES_PER_PIXEL_YEAR = 2 * 5 * 4


def _available_memory() -> int:
    """Bytes of memory available now (MemAvailable; 8 GiB where /proc/meminfo is missing)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024**3


def _check_whole_area_memory(plans: Sequence[Plan], estimate: PlanEstimate, hint: str) -> None:
    """Ecosystem quality reads the whole evaluation area into memory (not tile by tile): refuse a
    plan whose arrays would not fit in the memory available now (ConfigError, exit 2)."""
    if not any(ECOSYSTEM_QUALITY in p.options.get("assessments", ()) for p in plans):
        return
    years = max(len(p.years) for p in plans)
    need = estimate.pixels_per_year * years * EQ_BYTES_PER_PIXEL_YEAR
    have = _available_memory()
    if need > 0.8 * have:
        raise ConfigError(
            f"ecosystem_quality holds the whole evaluation area in memory: about {_size(need)} for "
            f"{estimate.pixels_per_year:,} px x {years} years, but {_size(have)} is available; "
            f"assess it for a smaller area (e.g. per prefecture) or fewer years, or use a coarser "
            f"--resolution{hint}"
        )


def check_plan(plans: Sequence[Plan], limits: PlanLimits, *, force: bool = False,
               overwrite: bool = False) -> PlanEstimate:
    """Check a run's plans before anything is written (see the module docstring).

    Raises :class:`~eqi.errors.InputError` (output folder) or :class:`~eqi.errors.ConfigError`
    (grid far finer than the inputs, too many pixels, not enough free disk; ``force`` lets
    these pass).  Returns the estimate.
    """
    first = plans[0]
    base = check_output_folder(first.out)
    grid = first.stack.grid
    estimate = estimate_outputs(plans, overwrite=overwrite, disk_factor=limits.disk_factor)
    if force:
        return estimate
    hint = "; if this is what you want, rerun with --force"
    native = native_resolution(first.stack.collections)
    if native is not None and native / grid.resolution > limits.max_upsampling:
        raise ConfigError(
            f"the grid ({grid.resolution:g} m) is {native / grid.resolution:.0f}x finer than the finest "
            f"native pixels of {', '.join(first.stack.collections)} ({native:g} m): "
            f"{estimate.pixels_per_year:,} px per year of resampled copies of the same pixels; "
            f"choose --resolution {native:g} or coarser (limit: plan_checks.max_upsampling = "
            f"{limits.max_upsampling:g}){hint}"
        )
    if estimate.pixels_per_year > limits.max_pixels:
        raise ConfigError(
            f"the plan is {estimate.describe()}, above plan_checks.max_pixels = {limits.max_pixels:.3g}; "
            f"choose a coarser --resolution or a smaller AOI, or raise plan_checks.max_pixels{hint}"
        )
    _check_whole_area_memory(plans, estimate, hint)
    free = shutil.disk_usage(base).free
    need = estimate.bytes + limits.disk_reserve_bytes
    if free < need:
        raise ConfigError(
            f"not enough free disk for {first.out}: {_size(free)} free on {base}, the plan needs up to "
            f"{_size(estimate.bytes)} ({estimate.describe()}, x plan_checks.disk_factor "
            f"{limits.disk_factor:g}) plus plan_checks.disk_reserve_gb {limits.disk_reserve_bytes / 1e9:g} GB; "
            f"free space or choose another --out{hint}"
        )
    return estimate
