"""The annual run: an evaluation area on a tile grid x years -> products per region.

Stages, each restartable by its own done markers (see :mod:`eqi.pipeline.plan` for the layout):

1. per year, one catalog search over the area (saved; reused by reruns of finished years);
2. tile x year: load, mask, composite, per-pixel products (shared by every region on the tile);
3. models fitted once per area and period (FVC end-members, RSEI, land-cover classifier);
4. tile x year: fitted products applied;
5. region x year: mosaics (VRT) and clipped COGs, ``item.json`` last.

A rerun skips what is done unless ``overwrite``; ``dry_run`` prints the plan.  Before the output
folder is created, the plan is checked (:func:`eqi.pipeline.checks.check_plan`: output folder,
grid, pixel count, free disk) and the source opened when a search is needed: a bad plan exits 2
leaving nothing behind.  A lock keeps two runs off one output folder.  A region whose tiles or
models failed is reported failed (a failure record beside its item, :mod:`eqi.pipeline.status`);
the others complete (exit code 1), and a rerun computes only what is missing.  Every run ends
with a :class:`RunSummary` (also attached to the error a failed run raises, ``exc.summary``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
from rasterio.errors import RasterioError
from shapely.geometry import shape

from eqi.config import RunConfig
from eqi.errors import EqiError, InputError, NoScenesError, TaskFailedError
from eqi.geo.grid import TileId
from eqi.geo.regions import Region, load_regions
from eqi.io import landcover_tables
from eqi.io.catalog import is_sentinelhub_source, load_items, open_catalog, save_items
from eqi.io.landcover_reference import item_for_raster, load_reference, reference_items
from eqi.io.qgis_project import write_qgis_project
from eqi.io.stac import update_catalog
from eqi.pipeline.checks import PlanEstimate, PlanLimits, check_plan
from eqi.pipeline.cluster import current_client
from eqi.pipeline.fit import fit_model, landcover_map_accuracy, load_model, model_done
from eqi.pipeline.lock import RunLock
from eqi.pipeline.plan import Plan, build_plan, native_anchor
from eqi.pipeline.region_stage import run_apply, run_region, write_area_mosaics
from eqi.pipeline.status import clear_failure, finish_run_record, write_failure, write_run_record
from eqi.pipeline.tasks import check_done, params_hash
from eqi.pipeline.tile_stage import YearScenes, tile_reference_loader
from eqi.pipeline.tile_tasks import TileJob, run_tile_jobs
from eqi.products import REGISTRY, ClassEntry, assessments, wants_trends
from eqi.sensors import identify_sensor

__all__ = ["Task", "TaskResult", "RunSummary", "summarize", "check_run_plan", "plan", "run", "search_area"]

log = logging.getLogger("eqi.run")


@dataclass(frozen=True)
class Task:
    """One region x year: the unit users see (one folder of outputs, one item)."""

    region: Region
    year: int
    id: str
    dir: Path

    @property
    def item(self) -> Path:
        return self.dir / "item.json"


@dataclass
class TaskResult:
    task: Task
    status: str  # "done" | "skipped" | "failed" | "planned"
    message: str = ""
    outputs: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    error: EqiError | None = None


class _LazyCatalog:
    """Opens the catalog at the first search: reruns that reuse saved searches never touch it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._catalog: Any = None

    @property
    def catalog(self) -> Any:
        if self._catalog is None:
            self._catalog = open_catalog(self.source)
        return self._catalog

    def search(self, **kwargs: Any) -> list[pystac.Item]:
        return self.catalog.search(**kwargs)

    def probe(self) -> None:
        """Open the catalog now (a STAC API: its landing page), raising the source's error."""
        if hasattr(self.catalog, "client"):
            _ = self.catalog.client

    def materializer(self) -> Any:
        """``materialize(items, geobox, bands)`` for sources without files (Sentinel Hub), else None."""
        return self.catalog.materialize if is_sentinelhub_source(self.source) else None


def _refresh_projects(p: Plan) -> None:
    """Rewrite the QGIS project of every finished region x year of ``p`` (not an asset of the
    task item, so the done markers stay valid)."""
    for task in _tasks(p):
        if task.item.is_file():
            write_qgis_project(p.out, task.region, task.year, regions=p.area.regions, area=p.area.slug)


def _tasks(p: Plan) -> list[Task]:
    return [Task(r, y, p.region_task_id(r, y), p.region_dir(r, y)) for r in p.area.regions for y in p.years]


def plan(config: RunConfig, regions: Sequence[Region] | None = None) -> list[Task]:
    """Region x year tasks of a run, in region then year order (no search)."""
    return _tasks(build_plan(config, regions=regions))


# ------------------------------------------------------------------------------ search


def search_area(
    catalog: Any, geometry: Any, window: str, collections: Sequence[str], *,
    max_cloud_cover: float | None, source: str, label: str,
) -> list[pystac.Item]:
    """Items of ``collections`` in ``window`` whose footprint touches ``geometry`` (lon/lat)."""
    items = catalog.search(bbox=tuple(geometry.bounds), datetime=window, collections=list(collections))
    hits = []
    for item in items:
        if item.geometry is not None and not shape(item.geometry).intersects(geometry):
            continue
        cloud = item.properties.get("eo:cloud_cover")
        if max_cloud_cover is not None and cloud is not None and cloud > max_cloud_cover:
            continue
        hits.append(item)
    if not hits:
        period = window.replace("T00:00:00Z", "").replace("T23:59:59Z", "")
        raise NoScenesError(
            f"no {', '.join(collections)} scene touches region '{label}' in {period} "
            f"(source {source}); check the AOI, the years/season and the collections"
        )
    return hits


def _search_path(p: Plan, year: int, season: str) -> Path:
    key = params_hash({"source": p.stack.source, "collections": list(p.stack.collections), "season": season,
                       "bounds": [round(v, 6) for v in p.area.geometry.bounds],
                       "max_cloud_cover": p.stack.max_cloud_cover})  # fmt: skip
    return p.area_root / "searches" / f"{year}-{season.replace('/', '_')}-{key}.json"


def _year_scenes(p: Plan, catalog: Any, year: int, *, reuse: bool) -> YearScenes:
    """The year's scenes over the area: the saved search when ``reuse``, else a new one (saved)."""

    def one(season: str, *, required: bool) -> tuple[pystac.Item, ...]:
        path = _search_path(p, year, season)
        if reuse and path.is_file():
            return tuple(load_items(path))
        try:
            found = search_area(catalog, p.area.geometry, p.stack.window(year, season), p.stack.collections,
                                max_cloud_cover=p.stack.max_cloud_cover, source=p.stack.source,
                                label=p.area.regions[0].name if len(p.area.regions) == 1 else p.area.slug)  # fmt: skip
        except NoScenesError:
            if required:
                raise
            found = []
        save_items(found, path)
        return tuple(found)

    main = one(p.stack.season, required=True)
    extra = {w: one(w, required=False) for w in p.options.get("extra_seasons", [])}
    specs = [identify_sensor(i) for i in main]
    return YearScenes(year, main, extra, frozenset(s.family for s in specs), frozenset(s.id for s in specs))


# ------------------------------------------------------------------------------ helpers


def _tile_files(item_path: Path) -> dict[str, Path]:
    """Data files of a finished tile task (from its item), plus ``_dir``."""
    data = json.loads(item_path.read_text(encoding="utf-8"))
    files = {k: (item_path.parent / a["href"]).resolve() for k, a in data.get("assets", {}).items()
             if "metadata" not in a.get("roles", [])}  # fmt: skip
    files["_dir"] = item_path.parent
    return files


def _holds(files: Mapping[str, Path], products: Sequence[str]) -> bool:
    """Whether a finished tile holds every product (an empty tile, no scene, holds all)."""
    data = [k for k in files if not k.startswith("_")]
    return not data or all(p in files for p in products)


def _is_simulated(item_path: Path) -> bool:
    try:
        return bool(json.loads(item_path.read_text(encoding="utf-8"))["properties"].get("eqi:simulated"))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _as_input_error(exc: Exception) -> EqiError:
    if isinstance(exc, EqiError):
        return exc
    return InputError(
        f"cannot read an input raster: {exc}. The file may be corrupt, truncated or moved; "
        "re-download the scene and re-index the archive (eqi archive index)"
    )


class _Classes:
    """Class tables of categorical products (from the profiles and the area models)."""

    def __init__(self, p: Plan, models: Mapping[str, Any]) -> None:
        self.p, self.models = p, models

    def profile(self, name: str) -> Any:
        return self.p.profiles[name]

    def model(self, name: str) -> Any:
        return self.models[name]

    def table(self) -> dict[str, list[ClassEntry]]:
        out = {}
        for name in (*self.p.tile_products, *self.p.fitted_products):
            entry = REGISTRY.get(name)
            if entry is not None and entry.classes is not None and (entry.model is None or entry.model in self.models):
                out[name] = list(entry.classes(self))  # type: ignore[arg-type]
        return out


def landcover_classes(level: int) -> list[ClassEntry]:
    table = landcover_tables.load_class_table()
    return [(c.code, c.color, f"{c.name_zh} {c.name_en}") for c in table.of_level(level)]


def _references(p: Plan, year: int) -> dict[str, Any]:
    """Loaders of auxiliary layers on tile grids (the land-cover reference of ``year``)."""
    opts = p.options.get("landcover_tile")
    if not opts:
        return {}
    if not opts.get("reference"):
        raise InputError(
            "product 'landcover' needs a land-cover reference raster: set landcover.reference "
            "(e.g. an ESA WorldCover tile) and landcover.mode (reclassify or classify)"
        )
    spec = str(opts["reference"]).replace("{year}", str(year))
    mapping = landcover_tables.load_mapping(opts.get("product", "esa-worldcover"))
    items = reference_items(spec, year=year, bbox=tuple(p.area.geometry.bounds), nodata=mapping.nodata,
                            collection=opts.get("collection"), asset=opts.get("asset", "map"))  # fmt: skip
    loader = tile_reference_loader(items, opts.get("asset", "map"), int(opts.get("level", 1)), mapping,
                                   landcover_tables.load_class_table())
    layers: dict[str, Any] = {"landcover": loader}
    if opts.get("water_bodies"):
        water_items = [item_for_raster(Path(opts["water_bodies"]), "map")]
        layers["water_bodies"] = lambda geobox: load_reference(water_items, geobox, "map")
    return {**layers, "_meta": {"reference_items": [i.id for i in items],
                                             "reference": Path(spec).name if "://" not in spec else spec,
                                             "mapping_source": getattr(mapping, "source", "")}}  # fmt: skip


# ------------------------------------------------------------------------------ the run


def _resolve_anchor(config: RunConfig, p: Plan, catalog: Any, progress: Callable[[str], None]) -> Plan:
    """With ``grid_anchor: auto``, put pixel edges on the scenes' own when the grid is theirs."""
    if config.grid_anchor != "auto":
        return p
    try:
        scenes = _year_scenes(p, catalog, p.years[0], reuse=True)
    except EqiError:
        return p
    anchor = native_anchor(scenes.main, config.crs_string, config.resolution)
    if anchor is None:
        return p
    progress(f"grid: the scenes' native grid (pixel corners at {anchor[0]:g}, {anchor[1]:g} mod "
             f"{config.resolution:g} m): nothing is resampled")  # fmt: skip
    return build_plan(config, regions=p.area.regions, anchor=anchor, native=True)


def run(
    config: RunConfig,
    *,
    overwrite: bool = False,
    dry_run: bool = False,
    force: bool = False,
    progress: Callable[[str], None] = print,
) -> list[TaskResult]:
    """Run every task of ``config``; raise :class:`TaskFailedError` if some failed.

    When *no* task could be computed because of the input (an AOI that touches no scene), that
    error (bad input, exit 2) is raised instead.  Either error carries ``summary``
    (:class:`RunSummary`).  ``force`` accepts a plan beyond ``plan_checks`` (pixels, upsampling,
    disk); nothing else.
    """
    regions = load_regions(config.aoi, name_field=config.aoi_name_field)
    # --- regional assessment (issue 8): tabular inputs and zones checked before anything is written
    if assessments(config.products):
        from eqi.pipeline.assess_stage import check_inputs  # deferred: see _run_later_stages

        check_inputs(config.assess.model_dump(mode="json"), products=assessments(config.products), years=config.years)
    # --- end regional assessment
    # one evaluation area (models fitted once for all regions), or each region its own when asked
    areas = [[r] for r in regions] if config.fit_scope == "region" else [regions]
    plans = [build_plan(config, regions=area) for area in areas]
    catalog = _LazyCatalog(config.source)
    # --- plan checks (issue 11): before the output folder is created or locked, nothing written
    estimate = check_run_plan(config, plans, force=force, overwrite=overwrite)
    if _needs_source(config, plans, overwrite):
        catalog.probe()
    # ---
    if dry_run:
        progress(f"plan: {estimate.describe()}")
        return [r for p in plans for r in _dry_run(p, overwrite, progress)]
    config.out.mkdir(parents=True, exist_ok=True)
    results: list[TaskResult] = []
    with RunLock(config.out):
        write_run_record(config.out, [{"task_id": t.id, "region": t.region.name, "year": t.year, "dir": t.dir}
                                      for p in plans for t in _tasks(p)])  # fmt: skip
        for p in plans:  # areas share the tile store: a tile is still composited once
            p = _resolve_anchor(config, p, catalog, progress)
            results += _run_locked(p, catalog, overwrite=overwrite, progress=progress)
            _run_later_stages(config, p, overwrite=overwrite, progress=progress)
        update_catalog(config.out, plans[0].options.get("title", "eqi outputs"))
        summary = _record_outcomes(config.out, results)
    failed = [r for r in results if r.status == "failed"]
    if failed and len(failed) == len(results) and all(r.error is not None for r in failed):
        first = failed[0].error
        assert first is not None
        if all(r.error is not None and r.error.exit_code == first.exit_code for r in failed):
            first.summary = summary  # type: ignore[attr-defined]
            raise first  # nothing could be computed: the input is at fault (exit 2)
    if failed:
        names = ", ".join(f"{r.task.region.name}/{r.task.year}" for r in failed)
        error = TaskFailedError(f"{len(failed)} of {len(results)} tasks failed: {names}")
        error.summary = summary  # type: ignore[attr-defined]
        raise error
    return results


# ------------------------------------------------------------------------------ plan checks, summary
# (issue 11: cron-friendly runs; kept apart from the stages)


def _run_later_stages(config: RunConfig, p: Plan, *, overwrite: bool, progress: Callable[[str], None]) -> None:
    """Per-pixel trends and the regional assessment (issue 8), when asked for.  Their modules are
    imported here, by the runs that use them: they bring exactextract (about 6 MiB) into the
    process, which a run of raster products never needs."""
    if wants_trends(config.products):  # per-pixel trends over the years
        from eqi.pipeline.trend_stage import run_trends

        run_trends(p, overwrite=overwrite, progress=progress)
    if assessments(config.products):
        from eqi.pipeline.assess_stage import run_assess

        if run_assess(p, overwrite=overwrite, progress=progress):
            _refresh_projects(p)  # the QGIS projects now join the new region tables (issue 10)


def check_run_plan(config: RunConfig, plans: Sequence[Plan] | None = None, *, force: bool = False,
                   overwrite: bool = False) -> PlanEstimate:
    """:func:`eqi.pipeline.checks.check_plan` with the config's ``plan_checks`` (writes nothing)."""
    if plans is None:
        regions = load_regions(config.aoi, name_field=config.aoi_name_field)
        plans = [build_plan(config, regions=[r]) for r in regions] if config.fit_scope == "region" else [
            build_plan(config, regions=regions)]  # fmt: skip
    return check_plan(plans, _limits(config), force=force, overwrite=overwrite)


def _limits(config: RunConfig) -> PlanLimits:
    c = config.plan_checks
    return PlanLimits(max_pixels=c.max_pixels, max_upsampling=c.max_upsampling,
                      disk_factor=c.disk_factor, disk_reserve_bytes=c.disk_reserve_gb * 1e9)  # fmt: skip


def _needs_source(config: RunConfig, plans: Sequence[Plan], overwrite: bool) -> bool:
    """Whether the run will search the catalog (the rules of :func:`_run_locked` and
    :func:`_year_scenes`): not when every task is done, nor when every year still to compute
    has its saved search and reuses it."""
    for p in plans:
        tasks = _tasks(p)
        done = {t.id for t in tasks if check_done(t.item, t.id) is None}
        todo = [t for t in tasks if overwrite or t.id not in done]
        if not todo:
            continue
        years = sorted({t.year for t in todo} | (set(p.years) if p.models else set()))
        if config.grid_anchor == "auto" and not _search_path(p, p.years[0], p.stack.season).is_file():
            return True
        for year in years:
            reuse = all(t.id in done for t in tasks if t.year == year)
            seasons = (p.stack.season, *p.options.get("extra_seasons", []))
            if not reuse or not all(_search_path(p, year, s).is_file() for s in seasons):
                return True
    return False


@dataclass(frozen=True)
class RunSummary:
    """Counts of a run's region x year tasks and the names (``region/year``) of the failed ones."""

    done: int = 0
    skipped: int = 0
    failed: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"done": self.done, "skipped": self.skipped, "failed": len(self.failed),
                "failed_tasks": list(self.failed)}  # fmt: skip

    def line(self) -> str:
        """``3 done, 1 skipped, 1 failed (west/2020)``."""
        names = f" ({', '.join(self.failed)})" if self.failed else ""
        return f"{self.done} done, {self.skipped} skipped, {len(self.failed)} failed{names}"


def summarize(results: Sequence[TaskResult]) -> RunSummary:
    """The :class:`RunSummary` of a run's task results."""
    return RunSummary(
        done=sum(r.status == "done" for r in results),
        skipped=sum(r.status == "skipped" for r in results),
        failed=tuple(f"{r.task.region.name}/{r.task.year}" for r in results if r.status == "failed"),
    )


def _record_outcomes(out: Path, results: Sequence[TaskResult]) -> RunSummary:
    """Failure records of failed tasks (removed for done ones), a log record per task with its
    fields, the run record's summary."""
    for r in results:
        fields = {"eqi_task": r.task.id, "eqi_region": r.task.region.name, "eqi_year": r.task.year,
                  "eqi_status": r.status, "eqi_console": False}  # the log file's copy of a progress line
        if r.status == "failed":
            code = r.error.exit_code if r.error is not None else TaskFailedError.exit_code
            write_failure(r.task.dir, r.task.id, region=r.task.region.name, year=r.task.year,
                          message=r.message, exit_code=code)  # fmt: skip
            log.error("task %s %s failed: %s", r.task.region.name, r.task.year, r.message, extra=fields)
        else:
            clear_failure(r.task.dir)
            log.info("task %s %s %s", r.task.region.name, r.task.year, r.status,
                     extra={**fields, "eqi_seconds": round(r.seconds, 3)})  # fmt: skip
    summary = summarize(results)
    finish_run_record(out, summary.as_dict())
    return summary


def _dry_run(p: Plan, overwrite: bool, progress: Callable[[str], None]) -> list[TaskResult]:
    results = []
    progress(f"area {p.area.slug}: {len(p.area.regions)} region(s), {len(p.tiles)} tile(s) of "
             f"{p.stack.grid.tile_px} px at {p.stack.grid.resolution:g} m; models: {', '.join(p.models) or 'none'}")  # fmt: skip
    for task in _tasks(p):
        reason = check_done(task.item, task.id)
        state = "skip (done)" if reason is None and not overwrite else "compute"
        progress(f"{state:12s} {task.region.name} {task.year}  task {task.id}")
        results.append(TaskResult(task, "planned", state))
    return results


def _run_locked(p: Plan, catalog: Any, *, overwrite: bool, progress: Callable[[str], None]) -> list[TaskResult]:
    tasks = _tasks(p)
    results: dict[str, TaskResult] = {}
    todo = []
    for task in tasks:
        if not overwrite and check_done(task.item, task.id) is None:
            progress(f"skip {task.region.name} {task.year}: done (task {task.id}; --overwrite to redo)")
            results[task.id] = TaskResult(task, "skipped")
        else:
            todo.append(task)
    if not todo:
        return [results[t.id] for t in tasks]
    start = time.perf_counter()
    years = sorted({t.year for t in todo} | (set(p.years) if p.models else set()))
    tile_files: dict[tuple[int, TileId], dict[str, Path]] = {}
    tile_errors: dict[tuple[int, TileId], EqiError] = {}
    year_errors: dict[int, EqiError] = {}
    scenes_of: dict[int, YearScenes] = {}
    references: dict[int, dict[str, Any]] = {}
    tile_jobs: list[TileJob] = []
    for year in years:
        year_tasks = [t for t in tasks if t.year == year]
        reuse = all(check_done(t.item, t.id) is None for t in year_tasks)
        try:
            scenes_of[year] = _year_scenes(p, catalog, year, reuse=reuse)
            references[year] = _references(p, year) if "lc_reference" in p.tile_products else {}
        except EqiError as exc:
            year_errors[year] = exc
            progress(f"FAILED {year}: {exc}")
            continue
        loaders = {k: v for k, v in references[year].items() if not k.startswith("_")}
        for tile in p.tiles:
            tid = p.tile_task_id(year, tile)
            item_path = p.tile_dir(year, tile) / "item.json"
            if not overwrite and check_done(item_path, tid) is None:
                files = _tile_files(item_path)
                if _holds(files, p.tile_products):
                    tile_files[(year, tile)] = files
                    continue
            tile_jobs.append(TileJob(year, tile, tid, loaders))
    # --- tile x year tasks: here in order, or one Dask task each on a cluster (eqi.pipeline.tile_tasks)
    for report in run_tile_jobs(p, tile_jobs, scenes_of, materialize=catalog.materializer(),
                                progress=progress, client=current_client()):  # fmt: skip
        key = (report.year, report.tile)
        if report.error is None:
            tile_files[key] = _tile_files(p.tile_dir(*key) / "item.json")
        else:
            tile_errors[key] = report.error
            progress(f"FAILED tile {report.tile} {report.year}: {report.error}")
    # --- end of tile x year tasks

    models_by_year, model_meta, model_errors = _fit_models(p, tile_files, tile_errors, year_errors, overwrite, progress)
    apply_errors: dict[tuple[int, TileId], EqiError] = {}
    if p.fitted_products:
        for year in years:
            if year in year_errors or model_errors.get(year):
                continue
            loaders = {k: v for k, v in references.get(year, {}).items() if not k.startswith("_")}
            apply_errors.update(_apply_year(p, year, tile_files, models_by_year.get(year, {}), loaders,
                                            overwrite=overwrite, progress=progress))  # fmt: skip
            _landcover_accuracy(p, year, tile_files, models_by_year.get(year, {}), model_meta.get(year, {}))
    tile_errors = {**tile_errors, **apply_errors}
    for task in todo:
        t0 = time.perf_counter()
        try:
            results[task.id] = _region_task(
                p, task, tile_files, tile_errors, year_errors, models_by_year.get(task.year, {}),
                model_meta.get(task.year, {}), model_errors.get(task.year, {}), references.get(task.year, {}),
                overwrite=overwrite, progress=progress,
            )  # fmt: skip
        except (EqiError, RasterioError) as exc:
            error = _as_input_error(exc)
            results[task.id] = TaskResult(task, "failed", str(error), error=error)
        except Exception as exc:  # a library error: the task fails, the run goes on
            log.debug("task %s failed", task.id, exc_info=True)
            results[task.id] = TaskResult(task, "failed", f"{type(exc).__name__}: {exc}")
        result = results[task.id]
        result.seconds = time.perf_counter() - t0
        if result.status == "done":
            progress(f"done {task.region.name} {task.year} in {result.seconds:.1f} s")
        else:
            progress(f"FAILED {task.region.name} {task.year}: {result.message}")
    for year in years:
        files = {t: f for (y, t), f in tile_files.items() if y == year}
        if files:
            write_area_mosaics(p, year, _merged_files(p, year, files))
    log.debug("run took %.1f s", time.perf_counter() - start)
    return [results[t.id] for t in tasks]


def _fit_models(p, tile_files, tile_errors, year_errors, overwrite, progress):
    """Fit (or load) every area model; returns per year: models, their metadata, their errors."""
    models_by_year: dict[int, dict[str, Any]] = {}
    meta_by_year: dict[int, dict[str, Any]] = {}
    errors_by_year: dict[int, dict[str, EqiError]] = {}
    done_fits: dict[tuple[str, tuple[int, ...]], tuple[Any, dict[str, Any]] | EqiError] = {}
    for year in p.years:
        for model in p.models:
            years = p.model_years(model, year)
            key = (model, years)
            if key not in done_fits:
                done_fits[key] = _fit_one(p, model, years, tile_files, tile_errors, year_errors, overwrite, progress)
            outcome = done_fits[key]
            if isinstance(outcome, EqiError):
                errors_by_year.setdefault(year, {})[model] = outcome
            else:
                models_by_year.setdefault(year, {})[model] = outcome[0]
                meta_by_year.setdefault(year, {})[model] = outcome[1]
    return models_by_year, meta_by_year, errors_by_year


def _fit_one(p, model, years, tile_files, tile_errors, year_errors, overwrite, progress):
    bad = [y for y in years if y in year_errors]
    if bad:
        return InputError(f"model {model} needs year(s) {bad}, which failed: {year_errors[bad[0]]}")
    failed_tiles = [f"{t} {y}" for (y, t) in tile_errors if y in years]
    if failed_tiles:
        return InputError(f"model {model} {years[0]}-{years[-1]} not fitted: tile(s) {', '.join(failed_tiles)} failed")
    tid = p.model_task_id(model, years)
    try:
        if not overwrite and model_done(p, model, years, tid):
            progress(f"skip model {model} {years[0]}-{years[-1]}: done")
            return load_model(p, model, years)
        level = int((p.options.get("landcover_tile") or {}).get("level", 1))
        fitted, meta = fit_model(p, model, years, tile_files, task_id=tid, classes=lambda: landcover_classes(level))
        progress(f"fitted {model} for {p.area.slug} {years[0]}-{years[-1]}" + _model_summary(model, meta))
        return fitted, meta
    except (EqiError, RasterioError) as exc:
        error = _as_input_error(exc)
        progress(f"FAILED model {model} {years[0]}-{years[-1]}: {error}")
        return error


def _model_summary(model: str, meta: Mapping[str, Any]) -> str:
    if model == "rsei":
        return f" (PC1 {meta['pc1_share']:.1%}, {meta['mode']})"
    if model == "fvc":
        return f" (NDVI soil {meta['ndvi_soil']:.3f}, veg {meta['ndvi_veg']:.3f}, {meta['method']})"
    if model == "landcover" and meta.get("accuracy"):
        return f" (sample OA {meta['accuracy']['overall_accuracy']:.3f})"
    return ""


def _apply_year(p: Plan, year: int, tile_files, models, loaders, *, overwrite: bool,
                progress: Callable[[str], None]) -> dict[tuple[int, TileId], EqiError]:
    """Fitted products on every tile of the area that has scenes; failures per tile."""
    errors: dict[tuple[int, TileId], EqiError] = {}
    classes = _Classes(p, models).table()
    for (y, tile), paths in sorted(tile_files.items()):
        if y != year or not any(not k.startswith("_") for k in paths):
            continue  # another year, or an empty tile (no scene): nothing to apply
        tid = p.apply_task_id(year, tile)
        if not overwrite and check_done(p.apply_dir(year, tile) / "item.json", tid) is None:
            continue
        simulated = bool(p.options.get("simulated")) or _is_simulated(Path(paths["_dir"]) / "item.json")
        try:
            run_apply(p, year, tile, {k: v for k, v in paths.items() if k != "_dir"}, models, task_id=tid,
                      classes=classes, simulated=simulated, references=loaders)  # fmt: skip
        except (EqiError, RasterioError) as exc:
            errors[(year, tile)] = _as_input_error(exc)
            progress(f"FAILED tile {tile} {year} (fitted products): {errors[(year, tile)]}")
        except Exception as exc:  # a library error: the tile fails, the run goes on
            log.debug("applying on tile %s %s failed", tile, year, exc_info=True)
            errors[(year, tile)] = InputError(f"{type(exc).__name__}: {exc}")
            progress(f"FAILED tile {tile} {year} (fitted products): {errors[(year, tile)]}")
    return errors


def _landcover_accuracy(p: Plan, year: int, tile_files, models, meta) -> None:
    """Map accuracy of the area's classified land cover of ``year`` (Olofsson et al. 2014)."""
    maker = models.get("landcover")
    if maker is None or maker.model is None:
        return
    classified = {t: p.apply_dir(year, t) / "landcover.tif" for (y, t) in tile_files if y == year}
    classified = {t: f for t, f in classified.items() if f.is_file()}
    report = landcover_map_accuracy(p, maker, p.model_years("landcover", year), classified)
    if report and report.get("map_accuracy"):
        meta.setdefault("landcover", {})["map_accuracy"] = report["map_accuracy"].get("overall_accuracy")


def _merged_files(p: Plan, year: int, files: Mapping[TileId, Mapping[str, Path]]) -> dict[TileId, dict[str, Path]]:
    """Tile-store files plus the applied (fitted) products of each tile."""
    out = {}
    for tile, paths in files.items():
        merged = dict(paths)
        apply_item = p.apply_dir(year, tile) / "item.json"
        if apply_item.is_file():
            merged.update({k: v for k, v in _tile_files(apply_item).items() if k != "_dir"})
        out[tile] = merged
    return out


def _region_task(p, task, tile_files, tile_errors, year_errors, models, model_meta, model_errors,
                 references, *, overwrite, progress) -> TaskResult:
    year, region = task.year, task.region
    if year in year_errors:
        raise year_errors[year]
    tiles = p.region_tiles[region.name]
    broken = [t for t in tiles if (year, t) in tile_errors]
    if broken:
        raise tile_errors[(year, broken[0])]
    needed = {REGISTRY[n].model for n in p.fitted_products}
    missing = sorted(m for m in needed if m in model_errors)
    if missing:
        raise model_errors[missing[0]]
    files = {t: tile_files[(year, t)] for t in tiles if (year, t) in tile_files}
    simulated = bool(p.options.get("simulated")) or any(_is_simulated(Path(f["_dir"]) / "item.json") for f in files.values())
    classes = _Classes(p, models).table()
    merged = _merged_files(p, year, files)
    method = {name: dict(meta) for name, meta in model_meta.items()}
    for meta in method.values():
        meta.pop("state", None)
        meta.pop("task_id", None)
    if "landcover" in method and references.get("_meta"):
        method["landcover"].update(references["_meta"])
    extra = {}
    if "landcover" in models and models["landcover"].model is not None:
        years = p.model_years("landcover", year)
        extra = {"landcover_accuracy.json": p.model_path("landcover", years, ".accuracy.json"),
                 "landcover_accuracy.md": p.model_path("landcover", years, ".accuracy.md")}  # fmt: skip
    notes = _composite_notes(merged, models)
    searches = [_search_path(p, year, s) for s in (p.stack.season, *p.options.get("extra_seasons", []))]
    outputs = run_region(p, region, year, merged, task_id=task.id, classes=classes, method=method,
                         simulated=simulated, searches=searches, extra_files=extra, notes=notes)  # fmt: skip
    return TaskResult(task, "done", outputs=outputs)


def _composite_notes(files: Mapping[TileId, Mapping[str, Path]], models: Mapping[str, Any]) -> dict[str, Any]:
    """What the tiles say about their composites (cloud masking, sensors per role)."""
    notes: dict[str, Any] = {"composites": {}}
    masks = set()
    weighted: dict[str, float] = {}
    total = 0.0
    for paths in files.values():
        meta_path = Path(paths["_dir"]) / "metadata.json"
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("cloud_mask"):
                masks.add(meta["cloud_mask"])
            for role, sensor in (meta.get("composites") or {}).items():
                notes["composites"].setdefault(role, set()).add(sensor)
            fractions = ((meta.get("masking") or {}).get("fractions")) or {}
            n = float(fractions.get("observations", 0) or 0)
            total += n
            for reason, share in fractions.items():
                if reason != "observations" and share is not None:
                    weighted[reason] = weighted.get(reason, 0.0) + float(share) * n
    notes["composites"] = {r: sorted(s) for r, s in notes["composites"].items()}
    notes["cloud_mask"] = sorted(masks)
    # share of the observations (scene x pixel) of the region's tiles masked for each reason
    notes["masked_fractions"] = {r: round(v / total, 6) for r, v in sorted(weighted.items())} if total else {}
    notes["masked_observations"] = int(total)
    return notes

