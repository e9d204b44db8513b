"""Apply fitted products per tile, then mosaic per region: VRT over tiles + clipped COG + item.

Apply (tile x year): the area models turn the tile store's layers into FVC, RSEI, land cover ...;
written beside the area's other outputs.  Region (region x year): for each product a VRT over the
tiles the region touches (the mosaic analysts can open for the area) and a COG clipped to the
region (nodata outside), with its QGIS style; ``items.json`` (scenes used), ``metadata.json`` and
``item.json`` (written last, the done marker).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from odc.geo.geobox import GeoBox

from eqi.geo.grid import TileId
from eqi.geo.regions import Region
from eqi.io.atomic import atomic_write_json, atomic_write_text, clean_stale_temps
from eqi.io.qgis_project import write_qgis_project
from eqi.io.raster import open_raster, region_mask, write_vrt
from eqi.io.stac import AssetInfo, eqi_version, product_item, write_item_atomic
from eqi.pipeline.context import TileContext
from eqi.pipeline.memory import release_memory
from eqi.pipeline.plan import Plan
from eqi.pipeline.tile_stage import tile_footprint
from eqi.pipeline.writing import output_tags, write_product
from eqi.products import REGISTRY, ClassEntry, spec_for
from eqi.resources import method_profiles

__all__ = ["run_apply", "run_region", "write_area_mosaics", "output_names"]


def run_apply(
    plan: Plan, year: int, tile: TileId, stored: Mapping[str, Path], models: Mapping[str, Any], *,
    task_id: str, classes: Mapping[str, Sequence[ClassEntry]], simulated: bool,
    references: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Fitted products of one tile and year from the tile store; ``item.json`` last."""
    out_dir = plan.apply_dir(year, tile)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out_dir)
    (out_dir / "item.json").unlink(missing_ok=True)
    geobox = plan.stack.grid.tile_geobox(tile)
    ctx = TileContext(geobox, profiles=plan.profiles, models=models, stored=stored,
                      references=references, chunk=plan.stack.chunk)
    tags = output_tags(plan, f"tile {tile}", year, simulated=simulated)
    files: dict[str, Path] = {}
    for name in plan.fitted_products:
        da = ctx.get(name)
        if "x" not in da.coords:  # a computation that dropped the grid's coordinates
            da = ctx.with_coords(da)
        files[name] = write_product(name, da, out_dir / f"{name}.tif", tags, classes.get(name), intermediate=True)
    assets = {n: AssetInfo(path=p, title=spec_for(n).description) for n, p in files.items()}
    footprint = tile_footprint(geobox)
    item = product_item(task_id, f"tile {tile}", year, footprint, list(footprint.bounds), assets,
                        properties={"eqi:tile": str(tile), "eqi:products": sorted(files)},
                        simulated=simulated, checksums=False)  # fmt: skip
    write_item_atomic(item, out_dir / "item.json")
    release_memory()  # the tile's arrays, freed now (eqi.pipeline.memory)
    return files


def output_names(plan: Plan) -> list[str]:
    """Files per region: the products asked for, plus band percentiles."""
    names = list(plan.outputs)
    for band in plan.outputs:
        names += [f"{band}_p{p:g}" for p in plan.stack.percentiles if band in REGISTRY and REGISTRY[band].family == "composite" and band != "count"]
    return names


def _sources(files: Mapping[TileId, Mapping[str, Path]], name: str, grid: Any) -> list[tuple[Path, GeoBox]]:
    return [(paths[name], grid.tile_geobox(tile)) for tile, paths in sorted(files.items()) if name in paths]


def _clip(da: xr.DataArray, inside: np.ndarray, nodata: float | int) -> xr.DataArray:
    mask = xr.DataArray(inside, dims=("y", "x"), coords={"y": da.y, "x": da.x})
    if np.issubdtype(da.dtype, np.floating):
        return da.where(mask)
    return da.where(mask, nodata).astype(da.dtype)


def run_region(
    plan: Plan, region: Region, year: int, files: Mapping[TileId, Mapping[str, Path]], *,
    task_id: str, classes: Mapping[str, Sequence[ClassEntry]], method: Mapping[str, Any],
    simulated: bool, searches: Sequence[Path] = (), extra_files: Mapping[str, Path] | None = None,
    notes: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Mosaic and clip every output of ``region`` for ``year``; returns the files written."""
    out_dir = plan.region_dir(region, year)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(out_dir)
    item_path = out_dir / "item.json"
    item_path.unlink(missing_ok=True)  # files change from here: a failure leaves a task that reruns
    grid = plan.stack.grid
    geobox = grid.region_geobox(region.geometry)
    inside = region_mask(region.geometry, geobox)
    tags = {**output_tags(plan, region.name, year, simulated=simulated), "EQI_TASK_ID": task_id}
    unmasked = any(str(m).startswith("none") for m in (notes or {}).get("cloud_mask", []))
    tags["EQI_CLOUD_MASK"] = "NOT APPLIED: some scenes had no cloud mask (--no-cloud-mask)" if unmasked else "applied"
    items = _region_items(files, searches, out_dir)
    tags["EQI_SCENE_COUNT"] = str(len(items))
    tags["EQI_SCENES"] = "see items.json and item.json (eqi:scene_ids)"
    written: dict[str, AssetInfo] = {}
    for name in output_names(plan):
        spec = spec_for(name)
        sources = _sources(files, name, grid)
        vrt = write_vrt(out_dir / f"{name}.vrt", geobox, sources, dtype=spec.dtype, nodata=spec.nodata,
                        description=spec.description)  # fmt: skip
        da = _clip(open_raster(vrt, chunk=plan.stack.chunk), inside, spec.nodata)
        path = write_product(name, da, out_dir / f"{name}.tif", tags, classes.get(name.split("_p")[0]))
        del da
        release_memory()  # one product's mosaic at a time, whatever the collector's thresholds
        written[name] = AssetInfo(path=path, title=spec.description)
        written[f"{name}_style"] = AssetInfo(path=path.with_suffix(".qml"), title=f"QGIS style of {name}",
                                             roles=("style",), media_type="text/xml")
        written[f"{name}_mosaic"] = AssetInfo(path=vrt, title=f"{name} mosaic over the tiles (VRT)",
                                              roles=("data", "overview"), media_type="application/x-ogc-vrt+xml")
    # issue 10: the task's QGIS project (+ boundaries.gpkg, true_colour.vrt); not assets of the item, so
    # `eqi report` can rewrite it (e.g. once region tables exist) without undoing the done marker
    write_qgis_project(plan.out, region, year, regions=plan.area.regions, area=plan.area.slug)
    for target_name, source in (extra_files or {}).items():
        target = out_dir / target_name
        shutil.copyfile(source, target)
        written[target.stem] = AssetInfo(
            path=target, title=target.name, roles=("metadata",),
            media_type="application/json" if target.suffix == ".json" else "text/markdown",
        )  # fmt: skip
    written["items"] = AssetInfo(path=out_dir / "items.json", title="STAC items used (inputs)",
                                 roles=("metadata",), media_type="application/geo+json")
    scene_ids = sorted(i["id"] for i in items)
    meta_path = atomic_write_json(out_dir / "metadata.json", {
        "task_id": task_id,
        "software": {"eqi": eqi_version()},
        "simulated": simulated,
        "scene_ids": scene_ids,
        "config": dict(plan.config_dump),
        "method": {**method, "profiles": method_profiles()},
        "grid": {**grid.describe(), "resampling": plan.options.get("resampling")},
        "tiles": sorted(str(t) for t in files),
        **(notes or {}),
    })  # fmt: skip
    written["metadata"] = AssetInfo(path=meta_path, title="Method metadata", roles=("metadata",),
                                    media_type="application/json")
    window = plan.stack.window(year)
    item = product_item(
        task_id, region.name, year, region.geometry, list(region.geometry.bounds), written,
        properties={
            "eqi:products": [n for n in output_names(plan)],
            "eqi:season": plan.stack.season,
            "eqi:sensors": sorted({str(i.get("properties", {}).get("platform", "")) for i in items} - {""}),
            "eqi:area": plan.area.slug,
            "eqi:cloud_mask": tags["EQI_CLOUD_MASK"],
            "start_datetime": window.split("/")[0],
            "end_datetime": window.split("/")[1],
        },
        scene_ids=scene_ids, method=method, config_hash=plan.config_hash, simulated=simulated,
    )  # fmt: skip
    write_item_atomic(item, item_path)
    return [a.path for a in written.values()]


def _region_items(files: Mapping[TileId, Mapping[str, Path]], searches: Sequence[Path], out_dir: Path) -> list[dict[str, Any]]:
    """The scenes of the region's tiles (main and extra seasons), from the year's saved searches,
    written as ``items.json``; returned as STAC item dicts."""
    wanted: set[str] = set()
    for paths in files.values():
        folder = paths.get("_dir")
        if folder is not None:
            props = json.loads((Path(folder) / "item.json").read_text(encoding="utf-8"))["properties"]
            wanted |= set(props.get("eqi:scene_ids", [])) | set(props.get("eqi:extra_scene_ids", []))
    found: dict[str, dict[str, Any]] = {}
    for search in searches:
        if search.is_file():
            for feature in json.loads(search.read_text(encoding="utf-8")).get("features", []):
                if feature.get("id") in wanted:
                    found.setdefault(feature["id"], feature)
    items = sorted(found.values(), key=lambda f: (str(f.get("properties", {}).get("datetime")), f["id"]))
    atomic_write_text(out_dir / "items.json", json.dumps({"type": "FeatureCollection", "features": items},
                                                         indent=1, ensure_ascii=False) + "\n")  # fmt: skip
    return items


def write_area_mosaics(plan: Plan, year: int, files: Mapping[TileId, Mapping[str, Path]]) -> list[Path]:
    """One VRT per product over every tile of the evaluation area (``OUT/areas/<area>/<year>/``)."""
    grid = plan.stack.grid
    geobox = grid.region_geobox(plan.area.geometry)
    out = []
    for name in output_names(plan):
        spec = spec_for(name)
        sources = _sources(files, name, grid)
        if sources:
            out.append(write_vrt(plan.area_root / str(year) / f"{name}.vrt", geobox, sources,
                                 dtype=spec.dtype, nodata=spec.nodata, description=spec.description))
    return out
