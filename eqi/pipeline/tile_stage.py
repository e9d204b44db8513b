"""Tile x year: load the tile's scenes, mask, composite, compute per-pixel products, write them.

One task per tile and year, independent of the regions that use it (so neighbouring regions and
runs share it).  Memory is bounded by the tile: the composite of a tile is computed block by block
by Dask and held once (float32 bands of ``tile_px``²), then each product is written as a COG.
``item.json`` in the tile folder is written last: the done marker, with the scenes used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords
from shapely.geometry import shape

from eqi.geo.grid import TileId
from eqi.io.atomic import atomic_write_json, clean_stale_temps
from eqi.io.landcover_reference import load_reference
from eqi.io.load import ItemGroup, group_items, load_group
from eqi.io.stac import AssetInfo, product_item, write_item_atomic
from eqi.pipeline.checks import check_s2_offset
from eqi.pipeline.context import TileContext
from eqi.pipeline.memory import release_memory
from eqi.pipeline.plan import Plan
from eqi.pipeline.stack import composite_options, prepare_inputs
from eqi.pipeline.writing import output_tags, write_product
from eqi.products import COMPOSITE_BANDS, REGISTRY, bands_for, spec_for
from eqi.science.composite import composite, mask_summary
from eqi.science.indices import compute_index
from eqi.science.landcover import reclassify
from eqi.sensors import identify_sensor

__all__ = [
    "YearScenes", "TileOutcome", "items_for_tile", "run_tile", "tile_footprint",
    "tile_reference_loader", "LANDCOVER_FEATURE_INDICES",
]

log = logging.getLogger("eqi.run")

LANDCOVER_FEATURE_INDICES = ("ndvi", "mndwi", "ndbsi")  # classifier features beside the bands
LANDSAT, SENTINEL2 = "landsat-c2l2", "sentinel2-l2a"
Materialize = Callable[[Sequence[pystac.Item], GeoBox, Sequence[str]], list[pystac.Item]]


@dataclass(frozen=True)
class YearScenes:
    """The scenes of one year over the area: main season and extra (classifier) seasons."""

    year: int
    main: tuple[pystac.Item, ...]
    extra: Mapping[str, tuple[pystac.Item, ...]] = field(default_factory=dict)
    families: frozenset[str] = frozenset()
    sensors: frozenset[str] = frozenset()


@dataclass
class TileOutcome:
    tile: TileId
    year: int
    files: dict[str, Path]
    scene_ids: list[str]
    empty: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


def tile_footprint(geobox: GeoBox) -> Any:
    """The tile's footprint in lon/lat (shapely)."""
    return geobox.extent.to_crs("EPSG:4326").geom


def items_for_tile(items: Sequence[pystac.Item], geobox: GeoBox) -> list[pystac.Item]:
    """Items whose footprint intersects the tile (items without a geometry are kept)."""
    footprint = tile_footprint(geobox)
    return [i for i in items if i.geometry is None or shape(i.geometry).intersects(footprint)]


def _sensor_label(sensor_ids: set[str]) -> str:
    """The ``sensor`` attribute of a composite (selects per-sensor index coefficients)."""
    if not sensor_ids:
        return "none"
    if sensor_ids <= {"landsat8", "landsat9"}:
        return "landsat8"  # Landsat 8 and 9 share the OLI coefficients
    if len(sensor_ids) == 1:
        return next(iter(sensor_ids))
    return "mixed"


def _composite(
    plan: Plan, groups: Sequence[ItemGroup], geobox: GeoBox, bands: Sequence[str], sensor: str, *, wet: bool = False
) -> xr.Dataset:
    """The seasonal composite of ``groups`` on ``geobox``, computed into memory.

    Sentinel-2 offsets are checked against the pixels first; with ``wet`` the tasseled-cap
    wetness is computed per observation with its own sensor's coefficients, then composited.
    ``attrs["masking"]`` holds the fraction of observations masked for each reason.
    """
    stack = plan.stack
    offset_check = plan.profiles["mask"]["sentinel2_offset_check"]
    loaded = [
        check_s2_offset(g, load_group(g, geobox, chunk=stack.chunk, resampling=stack.resampling,
                                      dates_per_chunk=stack.dates_per_chunk), offset_check)
        for g in groups
    ]  # fmt: skip
    inputs = prepare_inputs(groups, loaded, bands, rules=stack.mask)
    comp = composite(
        inputs, percentiles=stack.percentiles, min_clear=stack.min_clear,
        **composite_options(inputs, plan.profiles["indices"], wet=wet),
    )  # fmt: skip
    comp, counts = dask.compute(comp, dict(inputs.reasons))
    release_memory(collect=False)  # the chunks' freed heap (~75 MiB for 7 bands x 16 dates), before the products
    comp = comp.assign_coords(xr_coords(geobox))
    comp.attrs["sensor"] = sensor
    comp.attrs["cloud_mask"] = "applied" if all(g.has_mask for g in groups) else "none for some scenes"
    comp.attrs["masking"] = {"fractions": mask_summary(inputs, counts), "notes": list(inputs.notes)}
    return comp


def _roles(plan: Plan, scenes: YearScenes) -> dict[str, set[str]]:
    """Sensor families feeding each composite role (spec §6.1 heat options for mixed runs)."""
    families = set(scenes.families)
    mixed = len(families) > 1 and LANDSAT in families
    if not mixed:
        return {"main": families, "specific": families, "thermal": families}
    specific = {SENTINEL2} if plan.options.get("heat") == "landsat-lst" else {LANDSAT}
    return {"main": families, "specific": specific, "thermal": {LANDSAT}}


def _sensors_by_role(scenes: YearScenes, roles: Mapping[str, set[str]]) -> dict[str, list[str]]:
    by_family: dict[str, set[str]] = {}
    for item in scenes.main:
        spec = identify_sensor(item)
        by_family.setdefault(spec.family, set()).add(spec.id)
    return {role: sorted(s for f in fams for s in by_family.get(f, ())) for role, fams in roles.items()}


def _needs_role(products: Sequence[str], role: str) -> bool:
    return any(REGISTRY[p].role == role for p in products if p in REGISTRY)


def run_tile(
    plan: Plan,
    tile: TileId,
    scenes: YearScenes,
    *,
    task_id: str,
    references: Mapping[str, Callable[[GeoBox], xr.DataArray]] | None = None,
    materialize: Materialize | None = None,
    progress: Callable[[str], None] = print,
) -> TileOutcome:
    """Compute and write the tile products of one tile and year; ``item.json`` last.

    ``materialize(items, geobox, bands)`` fetches pixels for sources without files (Sentinel Hub)
    and returns items whose assets are local files on the tile grid.
    """
    year = scenes.year
    out_dir = plan.tile_dir(year, tile)
    geobox = plan.stack.grid.tile_geobox(tile)
    items = items_for_tile(scenes.main, geobox)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out_dir)
    item_path = out_dir / "item.json"
    if not items:
        item_path.unlink(missing_ok=True)
        return _finish(plan, tile, year, geobox, {}, [], task_id, empty=True)

    roles = _roles(plan, scenes)
    sensors = _sensors_by_role(scenes, roles)
    products = [p for p in plan.tile_products if p in REGISTRY or p in COMPOSITE_BANDS]
    products.sort(key=lambda n: REGISTRY[n].same_as is not None)  # twins after what they equal
    extra_bands = [p for p in plan.outputs if p not in REGISTRY]
    bands = bands_for([*products, *extra_bands], sensors, plan.profiles["indices"], plan.options)
    needed_by = {b: [p for p in [*plan.outputs] if b in bands_for([p], sensors, plan.profiles["indices"], plan.options)]
                 for b in bands}  # band -> products needing it, for the error on a partial delivery
    if materialize is not None:
        items = materialize(items, geobox, bands)
    groups = group_items(
        items, bands, needed_by=needed_by, s2_boa_offset=plan.stack.s2_boa_offset,
        require_mask=plan.stack.require_mask,
    )
    progress(
        f"  tile {tile} {year}: {len(items)} scenes, {geobox.shape.x}x{geobox.shape.y} px, "
        f"bands {','.join(bands)}"
    )
    main_label = _sensor_label({g.sensor.id for g in groups})
    wet_main = "wet" in products and roles["specific"] == roles["main"]
    main = _composite(plan, groups, geobox, bands, main_label, wet=wet_main)
    composites = {"main": main}
    for role in ("specific", "thermal"):
        fams = roles[role]
        if fams == roles["main"] or not _needs_role(products, role):
            composites[role] = main
            continue
        chosen = [g for g in groups if g.sensor.family in fams]
        key = tuple(sorted(fams))
        cached = next((c for r, c in composites.items() if r != "main" and c.attrs.get("families") == key), None)
        if cached is not None:
            composites[role] = cached
            continue
        if not chosen:  # this tile has no scene of that family: products from it are nodata
            role_bands = [b for b in bands if b != "lwir"] if fams == {SENTINEL2} else bands
            composites[role] = main[[b for b in role_bands if b in main]].where(False)
            composites[role]["count"] = main["count"] * 0
            if "observed" in main:
                composites[role]["observed"] = main["observed"] * 0
            composites[role].attrs.update(main.attrs, families=key)
            continue
        role_bands = [b for b in bands if any(b in g.bands for g in chosen)]
        comp = _composite(plan, chosen, geobox, role_bands, _sensor_label({g.sensor.id for g in chosen}),
                          wet=role == "specific" and "wet" in products)
        comp.attrs["families"] = key
        composites[role] = comp
    ctx = TileContext(geobox, composites=composites, profiles=plan.profiles, references=references,
                      chunk=plan.stack.chunk)
    # files change from here: the old done marker goes first, so a failure leaves a task that reruns
    item_path.unlink(missing_ok=True)
    tags = output_tags(plan, f"tile {tile}", year, simulated=_simulated(plan, items))
    files: dict[str, Path] = {}
    for name in products:
        entry = REGISTRY.get(name)
        twin = entry.same_as if entry is not None else None
        if twin in files and composites[entry.role] is composites[REGISTRY[twin].role]:
            files[name] = files[twin]  # the same layer from the same composite: stored once
            continue
        da = main[name] if entry is None else ctx.get(name)
        files[name] = write_product(name, da, out_dir / f"{name}.tif", tags, classes=None, intermediate=True)
        release_memory(collect=False)  # the write's buffers: products do not stack on each other's freed heap
        for pct in plan.stack.percentiles:  # band percentiles ride along with the band
            key = f"{name}_p{pct:g}"
            if key in main:
                files[key] = write_product(key, main[key], out_dir / f"{key}.tif", tags, intermediate=True)
    for name in extra_bands:
        if name in main:
            files[name] = write_product(name, main[name], out_dir / f"{name}.tif", tags, intermediate=True)
    extra_ids: list[str] = []
    for k, window in enumerate(plan.options.get("extra_seasons", []), start=1):
        season_files, season_ids = _season_features(plan, scenes, window, k, geobox, out_dir, tags, materialize)
        files.update(season_files)
        extra_ids += season_ids
    meta = {"cloud_mask": main.attrs.get("cloud_mask"), "sensor": main_label, "extra_scene_ids": sorted(set(extra_ids)),
            "masking": main.attrs.get("masking"),
            "composites": {r: c.attrs.get("sensor") for r, c in composites.items()}}
    return _finish(plan, tile, year, geobox, files, items, task_id, metadata=meta)


def _season_features(
    plan: Plan, scenes: YearScenes, window: str, k: int, geobox: GeoBox,
    out_dir: Path, tags: Mapping[str, str], materialize: Materialize | None,
) -> tuple[dict[str, Path], list[str]]:
    """Bands and indices of another season of the year (classifier features ``<name>_s<k>``),
    and the ids of the scenes they come from."""
    items = items_for_tile(scenes.extra.get(window, ()), geobox)
    if not items:
        return {}, []
    ids = [i.id for i in items]
    sensors = {"main": sorted({identify_sensor(i).id for i in items})}
    bands = bands_for([*COMPOSITE_BANDS, *LANDCOVER_FEATURE_INDICES], sensors, plan.profiles["indices"])
    if materialize is not None:
        items = materialize(items, geobox, bands)
    groups = group_items(items, bands, s2_boa_offset=plan.stack.s2_boa_offset, require_mask=plan.stack.require_mask)
    comp = _composite(plan, groups, geobox, bands, _sensor_label({g.sensor.id for g in groups}))
    files: dict[str, Path] = {}
    layers = {b: comp[b] for b in bands}
    for name in LANDCOVER_FEATURE_INDICES:
        layers[name] = compute_index(name, comp, plan.profiles["indices"])
    for name, da in layers.items():
        key = f"{name}_s{k}"
        files[key] = write_product(name, da, out_dir / f"{key}.tif", tags, intermediate=True, output_name=key)
    return files, ids


def _simulated(plan: Plan, items: Sequence[pystac.Item]) -> bool:
    return bool(plan.options.get("simulated")) or any(i.properties.get("eqi:simulated") for i in items)


def _finish(
    plan: Plan, tile: TileId, year: int, geobox: GeoBox, files: Mapping[str, Path],
    items: Sequence[pystac.Item], task_id: str, *, empty: bool = False, metadata: Mapping[str, Any] | None = None,
) -> TileOutcome:
    out_dir = plan.tile_dir(year, tile)
    assets = {name: AssetInfo(path=path, title=spec_for(name.split("_s")[0] if name not in REGISTRY else name).description)
              for name, path in files.items()}  # fmt: skip
    meta_path = atomic_write_json(out_dir / "metadata.json", {"task_id": task_id, "tile": str(tile), "year": year,
                                                              "empty": empty, **(metadata or {})})
    assets["metadata"] = AssetInfo(path=meta_path, title="Tile metadata", roles=("metadata",),
                                   media_type="application/json")
    footprint = tile_footprint(geobox)
    extra_ids = list((metadata or {}).get("extra_scene_ids", []))
    item = product_item(
        task_id, f"tile {tile}", year, footprint, list(footprint.bounds), assets,
        properties={"eqi:tile": str(tile), "eqi:empty": empty, "eqi:products": sorted(files),
                    "eqi:extra_scene_ids": extra_ids,
                    "start_datetime": plan.stack.window(year).split("/")[0],
                    "end_datetime": plan.stack.window(year).split("/")[1]},
        scene_ids=sorted(i.id for i in items), simulated=_simulated(plan, items), checksums=False,
    )  # fmt: skip
    write_item_atomic(item, out_dir / "item.json")
    return TileOutcome(tile, year, dict(files), sorted(i.id for i in items), empty, dict(metadata or {}))


def tile_reference_loader(
    items: Sequence[pystac.Item], asset: str, level: int, mapping: Any, table: Any
) -> Callable[[GeoBox], xr.DataArray]:
    """Loader of the land-cover reference on a tile grid, reclassified to national classes
    (0 where the reference has no data or does not reach)."""

    def load(geobox: GeoBox) -> xr.DataArray:
        footprint = tile_footprint(geobox)
        hits = [i for i in items if i.geometry is None or shape(i.geometry).intersects(footprint)]
        if not hits:
            return xr.DataArray(np.zeros(geobox.shape, dtype="uint8"), dims=("y", "x"), coords=xr_coords(geobox))
        reference = load_reference(hits, geobox, asset)
        out = reclassify(reference, mapping, level=level, table=table).astype("uint8")
        return out.assign_coords(xr_coords(geobox))  # reclassify drops the CRS attributes

    return load
