"""The annual region run: regions x years -> composites, indices, RSEI, land cover as COGs.

One task = one region and one year, with a deterministic id.  Per task: search the catalog, save
the items used, load onto the region's GeoBox, mask, composite, compute products, write COGs and
styles, write ``item.json`` last (the done marker).  A rerun skips done tasks unless
``overwrite``; ``dry_run`` only prints the plan.  A lock keeps two runs off one output folder.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pystac
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import rasterize, xr_coords
from rasterio.errors import RasterioError

from eqi.config import RunConfig, SeasonWindow, config_hash
from eqi.errors import EqiError, InputError, NoScenesError, TaskFailedError
from eqi.geo.grid import region_geobox
from eqi.geo.regions import Region, load_regions
from eqi.io.atomic import atomic_write_json, clean_stale_temps
from eqi.io.catalog import load_items, open_catalog, save_items
from eqi.io.load import ItemGroup, group_items, load_group
from eqi.io.stac import AssetInfo, eqi_version, product_item, update_catalog, write_item_atomic
from eqi.pipeline import products_stage as product_stage
from eqi.pipeline.lock import RunLock
from eqi.pipeline.pooled import POOLED_INPUTS, run_pooled
from eqi.pipeline.stack import prepare_inputs
from eqi.pipeline.tasks import TaskPaths, check_done, task_id
from eqi.pipeline.writing import spec_for, write_product
from eqi.products import COMPOSITE_BANDS, expand_products
from eqi.resources import method_profiles
from eqi.science.composite import composite
from eqi.science.mask import MaskRules

__all__ = ["Task", "TaskResult", "plan", "run"]

log = logging.getLogger("eqi.run")


@dataclass(frozen=True)
class Task:
    """One region x year unit of work."""

    region: Region
    year: int
    id: str
    paths: TaskPaths


@dataclass
class TaskResult:
    task: Task
    status: str  # "done" | "skipped" | "failed" | "planned"
    message: str = ""
    outputs: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    error: EqiError | None = None


def _task_params(config: RunConfig, region: Region) -> dict[str, Any]:
    return {
        "config": config_hash(config),
        "region_bounds": [round(v, 6) for v in region.geometry.bounds],
        "eqi": eqi_version(),
    }


def plan(config: RunConfig, regions: Sequence[Region] | None = None) -> list[Task]:
    """Tasks of a run, in region then year order."""
    regions = list(regions) if regions is not None else load_regions(config.aoi, name_field=config.aoi_name_field)
    tasks = []
    for region in regions:
        for year in config.years:
            tid = task_id(region.name, year, _task_params(config, region))
            tasks.append(Task(region, year, tid, TaskPaths(config.out, region.name, year)))
    return tasks


class _LazyCatalog:
    """Opens the catalog at the first search: reruns that reuse saved items never touch it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._catalog: Any = None

    def search(self, **kwargs: Any) -> list[pystac.Item]:
        if self._catalog is None:
            self._catalog = open_catalog(self.source)
        return self._catalog.search(**kwargs)


def _search(
    config: RunConfig, catalog: Any, task: Task, season: SeasonWindow | None = None
) -> list[pystac.Item]:
    from shapely.geometry import shape

    window = (season or config.season_window).datetime_range(task.year)
    items = catalog.search(
        bbox=tuple(task.region.geometry.bounds), datetime=window, collections=config.collections
    )
    hits = []
    for item in items:
        if item.geometry is not None and not shape(item.geometry).intersects(task.region.geometry):
            continue
        cloud = item.properties.get("eo:cloud_cover")
        if config.max_cloud_cover is not None and cloud is not None and cloud > config.max_cloud_cover:
            continue
        hits.append(item)
    if not hits:
        raise NoScenesError(
            f"no {', '.join(config.collections)} scene touches region '{task.region.name}' in "
            f"{window.replace('T00:00:00Z', '').replace('T23:59:59Z', '')} (source {config.source}); "
            "check the AOI, the years/season and the collections"
        )
    return hits


def _saved_items(task: Task, name: str = "items.json") -> list[pystac.Item] | None:
    """The items a finished run of this same task used, so a rerun does not depend on the API.

    Only reused when ``item.json`` records this task id (same config, region and year); delete
    the items file to search again.
    """
    saved = task.paths.dir / name
    if not saved.is_file() or not task.paths.item.is_file():
        return None
    try:
        recorded = json.loads(task.paths.item.read_text(encoding="utf-8"))["properties"]["eqi:task_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return load_items(saved) if recorded == task.id else None


def _region_mask(region: Region, geobox: GeoBox) -> np.ndarray:
    from odc.geo.geom import Geometry

    mask = rasterize(Geometry(region.geometry, crs="EPSG:4326"), geobox, all_touched=False)
    return np.asarray(mask.values, dtype=bool)


def _attach(ds: xr.Dataset, geobox: GeoBox) -> xr.Dataset:
    return ds.assign_coords(xr_coords(geobox))


def _composite_for(
    config: RunConfig,
    groups: Sequence[ItemGroup],
    geobox: GeoBox,
    bands: Sequence[str],
) -> xr.Dataset:
    loaded = [load_group(g, geobox, chunk=config.chunk, resampling=config.resampling) for g in groups]
    inputs = prepare_inputs(
        groups,
        loaded,
        bands,
        rules=MaskRules(
            tuple(config.mask.qa_pixel_bad), tuple(config.mask.scl_bad), config.mask.buffer_px
        ),
    )
    comp = composite(
        inputs, percentiles=config.composite.percentiles, min_clear=config.composite.min_clear
    )
    families = {g.sensor.family for g in groups}
    sensor_ids = sorted({g.sensor.id for g in groups})
    if len(families) > 1:
        sensor = "mixed"
    elif families == {"landsat-c2l2"}:
        # Landsat 8 and 9 share the OLI coefficients; TM/ETM+ differ.
        sensor = "landsat8" if set(sensor_ids) <= {"landsat8", "landsat9"} else sensor_ids[0]
    else:
        sensor = sensor_ids[0]
    comp.attrs["sensor"] = sensor
    return _attach(comp, geobox)


def _composites(
    config: RunConfig,
    products: Sequence[str],
    groups: Sequence[ItemGroup],
    geobox: GeoBox,
    bands: Sequence[str],
    inside: xr.DataArray,
) -> tuple[xr.Dataset, xr.Dataset | None, xr.Dataset | None]:
    """The main composite (all sensors) and, for mixed runs, the Landsat-only and Sentinel-2-only
    composites that sensor-specific products need; computed into memory, NaN outside the region."""

    def computed(ds: xr.Dataset) -> xr.Dataset:
        (ds,) = dask.compute(ds)
        return ds.where(inside.assign_coords(ds.coords))

    main = _composite_for(config, groups, geobox, bands)
    (main,) = dask.compute(main)
    count = main["count"].where(inside.assign_coords(main.coords), 65535).astype("uint16")
    main = main.where(inside.assign_coords(main.coords))
    main["count"] = count
    thermal = sentinel2 = None
    if product_stage.needs_thermal_composite(products, groups, config):
        landsat = [g for g in groups if g.sensor.family == "landsat-c2l2"]
        thermal = computed(_composite_for(config, landsat, geobox, product_stage.landsat_bands(bands)))
    if product_stage.needs_sentinel2_composite(products, groups, config):
        s2 = [g for g in groups if g.sensor.family == "sentinel2-l2a"]
        sentinel2 = computed(_composite_for(config, s2, geobox, [b for b in bands if b != "lwir"]))
    return main, thermal, sentinel2


def _pooled_wanted(config: RunConfig) -> bool:
    wanted = {"rsei", "rsei_grade"} & set(expand_products(config.products))
    return bool(wanted) and config.rsei.mode == "pooled" and len(config.years) > 1


def _run_tags(task_or_region: str, simulated: bool) -> dict[str, str]:
    tags = {
        "EQI_VERSION": eqi_version(),
        "EQI_REGION": task_or_region,
        "EQI_SIMULATED": "true" if simulated else "false",
    }
    if simulated:
        tags["EQI_NOTE"] = "SIMULATED DATA - produced by the eqi offline demo, not an observation"
    return tags


def run_task(
    task: Task,
    config: RunConfig,
    catalog: Any,
    *,
    progress: Callable[[str], None] = print,
) -> TaskResult:
    """Compute and write every product of one task; ``item.json`` is written last."""
    start = time.perf_counter()
    paths = task.paths
    items = _saved_items(task) or _search(config, catalog, task)
    paths.dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(paths.dir)
    simulated = config.simulated or any(i.properties.get("eqi:simulated") for i in items)
    save_items(items, paths.dir / "items.json")
    products = expand_products(config.products)
    products += [b for b in config.bands if b not in products]
    if _pooled_wanted(config):  # the pooled stage reads these back from each year's outputs
        products += [p for p in POOLED_INPUTS if p not in products]
    geobox = region_geobox(task.region.geometry, config.crs_string, config.resolution)
    sensors_present = {i.properties.get("platform", "") for i in items}
    bands = product_stage.bands_needed(products, items, config.rsei.heat)
    groups = group_items(items, bands, s2_boa_offset=config.s2_boa_offset, require_mask=config.require_mask)
    progress(
        f"  {task.region.name} {task.year}: {len(items)} scenes, grid {geobox.shape.x}x{geobox.shape.y} "
        f"@ {config.resolution:g} m, bands {','.join(bands)}"
    )
    inside = xr.DataArray(_region_mask(task.region, geobox), dims=("y", "x"))
    comp, thermal, sentinel2 = _composites(config, products, groups, geobox, bands, inside)
    inside = inside.assign_coords(comp.coords)
    extra_items: list[pystac.Item] = []

    def season_composite(window: str) -> xr.Dataset | None:
        """Composite of another season of the same year (classifier features), if it has scenes."""
        season = SeasonWindow.parse(window)
        name = f"items-{str(season).replace('/', '_')}.json"
        try:
            found = _saved_items(task, name) or _search(config, catalog, task, season)
        except NoScenesError:
            return None
        save_items(found, paths.dir / name)
        extra_items.extend(found)
        season_bands = [b for b in COMPOSITE_BANDS if b in bands]
        season_groups = group_items(found, season_bands, s2_boa_offset=config.s2_boa_offset, require_mask=config.require_mask)
        (result,) = dask.compute(_composite_for(config, season_groups, geobox, season_bands))
        return result.where(inside)

    outputs, metadata = product_stage.compute_products(
        products, comp, thermal, config=config, task=task, inside=inside,
        season_composite=season_composite, sentinel2=sentinel2,
    )
    items = [*items, *extra_items]
    tags = {
        **_run_tags(task.region.name, simulated),
        "EQI_TASK_ID": task.id,
        "EQI_YEAR": str(task.year),
        "EQI_SEASON": config.season,
        "EQI_SCENE_COUNT": str(len(items)),
        "EQI_SCENES": "see items.json and item.json (eqi:scene_ids)",
    }
    # from here on files change: the old done marker goes first, so a failure while writing
    # leaves a task that reruns, never an item.json describing a mix of old and new files
    paths.item.unlink(missing_ok=True)
    written: dict[str, AssetInfo] = {}
    for name, (da, classes) in outputs.items():
        path = write_product(name, da, paths, tags, classes)
        written[name] = AssetInfo(path=path, title=spec_for(name).description)
    for extra in metadata.pop("_files", []):
        written[extra.stem] = AssetInfo(path=extra, title=extra.name, roles=("metadata",), media_type="application/json" if extra.suffix == ".json" else "text/markdown")
    written["items"] = AssetInfo(path=paths.dir / "items.json", title="STAC items used (inputs)", roles=("metadata",), media_type="application/geo+json")
    metadata["method"]["profiles"] = method_profiles()
    meta_path = paths.dir / "metadata.json"
    atomic_write_json(meta_path, {
        "task_id": task.id,
        "software": {"eqi": eqi_version()},
        "simulated": simulated,
        "scene_ids": sorted(i.id for i in items),
        "config": config.model_dump(mode="json"),
        **metadata,
    })
    written["metadata"] = AssetInfo(path=meta_path, title="Method metadata", roles=("metadata",), media_type="application/json")
    geometry = task.region.geometry
    item = product_item(
        task.id, task.region.name, task.year, geometry, list(geometry.bounds), written,
        properties={
            "eqi:products": list(outputs),
            "eqi:season": config.season,
            "eqi:sensors": sorted(s for s in sensors_present if s),
            "start_datetime": config.season_window.datetime_range(task.year).split("/")[0],
            "end_datetime": config.season_window.datetime_range(task.year).split("/")[1],
        },
        scene_ids=sorted(i.id for i in items),
        method=metadata.get("method", {}),
        config_hash=config_hash(config),
        simulated=simulated,
    )
    write_item_atomic(item, paths.item)
    return TaskResult(task, "done", outputs=[a.path for a in written.values()], seconds=time.perf_counter() - start)


def _item_says_simulated(item_path: Path) -> bool:
    """Whether a finished task's item records simulated inputs."""
    try:
        return bool(json.loads(item_path.read_text(encoding="utf-8"))["properties"].get("eqi:simulated"))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _run_pooled_stage(
    config: RunConfig,
    tasks: Sequence[Task],
    results: Sequence[TaskResult],
    *,
    overwrite: bool,
    progress: Callable[[str], None],
) -> None:
    """Pooled RSEI per region once all its years are done; failures are reported, not fatal."""
    ok = {r.task.id for r in results if r.status in ("done", "skipped")}
    by_region: dict[str, list[Task]] = {}
    for task in tasks:
        by_region.setdefault(task.region.name, []).append(task)
    for name, region_tasks in by_region.items():
        if not all(t.id in ok for t in region_tasks):
            progress(f"skip {name} pooled RSEI: not every year finished")
            continue
        simulated = config.simulated or any(_item_says_simulated(t.paths.item) for t in region_tasks)
        try:
            run_pooled(
                config, region_tasks[0].region, [t.id for t in region_tasks],
                write=write_product, tags=_run_tags(name, simulated),
                overwrite=overwrite, progress=progress,
            )
        except EqiError as exc:
            progress(f"FAILED {name} pooled RSEI: {exc}")


def run(
    config: RunConfig,
    *,
    overwrite: bool = False,
    dry_run: bool = False,
    progress: Callable[[str], None] = print,
) -> list[TaskResult]:
    """Run every task of ``config``; raise :class:`TaskFailedError` if some failed.

    When *no* task found any scene (an AOI that touches no scene), :class:`NoScenesError`
    (bad input, exit 2) is raised instead.
    """
    tasks = plan(config)
    results: list[TaskResult] = []
    if dry_run:
        for task in tasks:
            reason = check_done(task.paths, task.id)
            state = "skip (done)" if reason is None and not overwrite else "compute"
            progress(f"{state:12s} {task.region.name} {task.year}  task {task.id}")
            results.append(TaskResult(task, "planned", state))
        return results
    config.out.mkdir(parents=True, exist_ok=True)
    catalog = _LazyCatalog(config.source)
    with RunLock(config.out):
        for task in tasks:
            if not overwrite and check_done(task.paths, task.id) is None:
                progress(f"skip {task.region.name} {task.year}: done (task {task.id}; --overwrite to redo)")
                results.append(TaskResult(task, "skipped"))
                continue
            progress(f"run  {task.region.name} {task.year} (task {task.id})")
            try:
                result = run_task(task, config, catalog, progress=progress)
            except EqiError as exc:
                result = TaskResult(task, "failed", str(exc), error=exc)
            except RasterioError as exc:  # unreadable or corrupt input raster
                error = InputError(
                    f"cannot read an input raster: {exc}. The file may be corrupt, truncated or "
                    "moved; re-download the scene and re-index the archive (eqi archive index)"
                )
                result = TaskResult(task, "failed", str(error), error=error)
            except Exception as exc:  # a library error (corrupt file, I/O): the task fails, the run goes on
                log.debug("task %s failed", task.id, exc_info=True)
                result = TaskResult(task, "failed", f"{type(exc).__name__}: {exc}")
            results.append(result)
            if result.status == "done":
                progress(f"done {task.region.name} {task.year} in {result.seconds:.1f} s")
            else:
                progress(f"FAILED {task.region.name} {task.year}: {result.message}")
        if _pooled_wanted(config):
            _run_pooled_stage(config, tasks, results, overwrite=overwrite, progress=progress)
        update_catalog(config.out, config.title or "eqi outputs")
    failed = [r for r in results if r.status == "failed"]
    if failed and len(failed) == len(results) and all(r.error is not None for r in failed):
        # nothing could be computed: the input is at fault -> that error (exit 2), not "tasks failed"
        first = failed[0].error
        if all(r.error.exit_code == first.exit_code for r in failed):
            raise first
    if failed:
        names = ", ".join(f"{r.task.region.name}/{r.task.year}" for r in failed)
        raise TaskFailedError(f"{len(failed)} of {len(results)} tasks failed: {names}")
    return results
