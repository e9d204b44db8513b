"""The ``eqi`` command line.

Exit codes: 0 all done; 1 some tasks failed (named); 2 bad usage, config or input; 75 another run
holds the lock.  User mistakes end with one clear message and no traceback.  ``eqi run`` never
prompts, logs through :mod:`eqi.io.logs` (``--log-file``, ``--log-format json``; secrets redacted)
and ends with one summary line, the last line it writes (docs/operations.md).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from eqi.errors import EXIT_BAD_INPUT, EXIT_OK, EXIT_TASKS_FAILED, ConfigError, EqiError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="eqi: satellite scenes to ecological-quality products (NDVI, FVC, RSEI, land cover).",
    pretty_exceptions_enable=False,
)
archive_app = typer.Typer(no_args_is_help=True, help="Index delivered scenes into a searchable archive.")
aoi_app = typer.Typer(no_args_is_help=True, help="The AOI library (Sichuan province, prefectures, counties) and zone layers.")
app.add_typer(archive_app, name="archive")
app.add_typer(aoi_app, name="aoi")


log = logging.getLogger("eqi.cli")
progress_log = logging.getLogger("eqi.progress")


def _echo(message: str) -> None:
    typer.echo(message)


@contextlib.contextmanager
def _heavy_imports() -> Iterator[None]:
    """Import the pipeline's libraries without the cyclic garbage collector, then freeze them.

    Importing odc-stac, xarray, pandas and dask creates ~10^6 long-lived objects; every full
    collection during the run would walk them all again while holding the GIL (1-3 s of a
    2048^2 run).  Frozen objects are never scanned; garbage made by the run is still collected.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _log_progress(message: str) -> None:
    progress_log.info(message)


def _bar_and_log(shown: Any) -> Any:
    def report(message: str) -> None:
        shown(message)
        progress_log.info(message, extra={"eqi_console": False})  # the bar printed it already

    return report


def _parse_years(text: str) -> list[int]:
    years: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                years.extend(range(a, b + 1))
            else:
                years.append(int(part))
        except ValueError:
            raise ConfigError(f"--year '{text}' must be a year, a list (2022,2023) or a range (2019-2023)") from None
    return years


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _build_config(
    config: Path | None,
    *,
    source: str | None,
    collections: str | None,
    aoi: str | None,
    year: str | None,
    season: str | None,
    crs: str | None,
    resolution: float | None,
    products: str | None,
    out: Path | None,
    s2_boa_offset: int | None = None,
    no_cloud_mask: bool = False,
):
    from eqi.config import build_config, load_config

    overrides: dict[str, Any] = {
        "source": source,
        "collections": _split(collections),
        "aoi": aoi,
        "years": _parse_years(year) if year else None,
        "season": season,
        "crs": crs,
        "resolution": resolution,
        "products": _split(products),
        "out": str(out.resolve()) if out else None,
        "s2_boa_offset": s2_boa_offset,
        "require_mask": False if no_cloud_mask else None,
    }
    if source and "://" not in source:
        overrides["source"] = str(Path(source).resolve())
    if aoi and Path(aoi).suffix:
        overrides["aoi"] = str(Path(aoi).resolve())
    if config is not None:
        return load_config(config, overrides)
    given = {"source": source, "aoi": aoi, "year": year, "out": out}  # collections: all the archive's
    missing = [f"--{k}" for k, v in given.items() if not v]
    if missing:
        raise ConfigError(f"without a CONFIG file, give {', '.join(missing)}")
    return build_config({k: v for k, v in overrides.items() if v is not None})


ConfigArg = Annotated[Path | None, typer.Argument(help="YAML run config (flags override it)")]
SourceOpt = Annotated[str | None, typer.Option("--source", help="STAC API URL or archive .parquet file")]
CollectionsOpt = Annotated[str | None, typer.Option("--collections", help="comma-separated, e.g. landsat-c2-l2,sentinel-2-l2a (default: every collection of an archive; required for a STAC API)")]
AoiOpt = Annotated[str | None, typer.Option("--aoi", help="vector file or library name (sichuan:510117)")]
YearOpt = Annotated[str | None, typer.Option("--year", help="year, list or range: 2023 / 2022,2023 / 2019-2023")]
SeasonOpt = Annotated[str | None, typer.Option("--season", help="window MM-DD/MM-DD (default 06-01/09-30)")]
CrsOpt = Annotated[str | None, typer.Option("--crs", help="output CRS (default albers-china)")]
ResOpt = Annotated[float | None, typer.Option("--resolution", help="pixel size in metres (default 30)")]
ProductsOpt = Annotated[str | None, typer.Option("--products", help="comma-separated: composite,count,ndvi,...")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="output folder")]
S2OffsetOpt = Annotated[int | None, typer.Option("--s2-boa-offset", help="state the Sentinel-2 BOA offset (0 or -1000) for items that lack it")]
LogFileOpt = Annotated[Path | None, typer.Option("--log-file", help="append the log to this file (config 'log: {file: ...}'); the console then shows only warnings, errors and the summary")]
LogFormatOpt = Annotated[str | None, typer.Option("--log-format", help="text or json (one JSON object a line: time, level, logger, message, task fields); config 'log: {format: ...}'")]
NoMaskOpt = Annotated[bool, typer.Option("--no-cloud-mask", help="accept scenes without their cloud-mask band (QA_PIXEL / SCL); their clouds are not masked")]


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="YAML run config")],
) -> None:
    """Check a config, its AOIs, its plan (output folder, grid, pixels, disk) and its source."""
    from eqi.geo.grid import region_geobox
    from eqi.geo.regions import load_regions
    from eqi.io.catalog import open_catalog, resolve_collections
    from eqi.products import expand_products

    cfg = _build_config(config, source=None, collections=None, aoi=None, year=None,
                        season=None, crs=None, resolution=None, products=None, out=None)
    _validate_assessment(cfg)
    resolve_collections(cfg.source, cfg.collections)
    names = expand_products(cfg.products)
    regions = load_regions(cfg.aoi, name_field=cfg.aoi_name_field)
    for region in regions:
        gbox = region_geobox(region.geometry, cfg.crs_string, cfg.resolution)
        _echo(f"region {region.name}: grid {gbox.shape.x} x {gbox.shape.y} px at {cfg.resolution:g} m")
    from eqi.pipeline.run import check_run_plan

    _echo(f"plan: {check_run_plan(cfg).describe()}")  # output folder, grid, pixels, disk (exit 2)
    catalog = open_catalog(cfg.source)
    if hasattr(catalog, "client"):  # a STAC API: its landing page must answer
        _ = catalog.client
        _echo(f"source {cfg.source}: STAC API reachable")
    else:
        _echo(f"source {cfg.source}: archive readable")
    _echo(f"ok: {len(regions)} region(s) x {len(cfg.years)} year(s); products {', '.join(names)}")


def _validate_assessment(cfg: Any) -> None:
    """Tabular inputs and zone layers of the regional assessment (products ei/eqi)."""
    from eqi.pipeline.assess_stage import check_inputs
    from eqi.products import assessments

    if not assessments(cfg.products) and not cfg.assess.tables and not cfg.assess.zones:
        return
    tables = check_inputs(cfg.assess.model_dump(mode="json"), products=assessments(cfg.products), years=cfg.years)
    for family, frame in sorted(tables.items()):
        _echo(f"table {family}: {frame.attrs['source']} ({len(frame)} row(s)) ok")
    if "ecosystem_quality" in assessments(cfg.products):
        _validate_ecosystem_quality(cfg)
    if not cfg.assess.tables:
        _echo("tables: none given (assess.tables): EI and EQI will be incomplete, naming the missing inputs")


def _validate_ecosystem_quality(cfg: Any) -> None:
    """Say which ecosystem-quality inputs are present (files already checked) and which are missing."""
    from eqi.pipeline.eq_stage import EQ_PROFILE, missing_inputs
    from eqi.resources import load_profile

    opts, profile = cfg.assess.ecosystem_quality.model_dump(mode="json"), load_profile(EQ_PROFILE)
    for year in cfg.years:
        lacking = missing_inputs(opts, year, profile)
        _echo(f"ecosystem quality {year}: " + (f"not assessed, missing {'; '.join(lacking)}" if lacking else "inputs ok"))


@app.command()
def search(
    config: ConfigArg = None,
    source: SourceOpt = None,
    collections: CollectionsOpt = None,
    aoi: AoiOpt = None,
    year: YearOpt = None,
    season: SeasonOpt = None,
    out: OutOpt = None,
    save: Annotated[Path | None, typer.Option("--save", help="write the items found as an ItemCollection JSON")] = None,
    no_cloud_mask: NoMaskOpt = False,
) -> None:
    """List the scenes a run would use (and save them)."""
    from eqi.io.catalog import open_catalog, resolve_collections, save_items
    from eqi.pipeline.plan import build_plan
    from eqi.pipeline.run import search_area

    cfg = _build_config(config, source=source, collections=collections, aoi=aoi, year=year,
                        season=season, crs=None, resolution=None, products=None,
                        out=out or Path("."), no_cloud_mask=no_cloud_mask)
    cfg = cfg.model_copy(update={"collections": resolve_collections(cfg.source, cfg.collections)})
    catalog = open_catalog(cfg.source)
    plan = build_plan(cfg)
    label = plan.area.regions[0].name if len(plan.area.regions) == 1 else plan.area.slug
    found = []
    for y in plan.years:
        items = search_area(catalog, plan.area.geometry, plan.stack.window(y), plan.stack.collections,
                            max_cloud_cover=plan.stack.max_cloud_cover, source=cfg.source, label=label)
        _echo(f"{label} {y}: {len(items)} scene(s)")
        for item in items:
            cloud = item.properties.get("eo:cloud_cover")
            cloud_txt = f"{cloud:5.1f} %" if isinstance(cloud, int | float) else "    ?"
            missing = item.properties.get("eqi:missing_bands")
            lacks = f"  (lacks {','.join(missing)})" if missing else ""
            _echo(f"  {item.datetime:%Y-%m-%d}  {item.collection_id or '':20s} {cloud_txt}  {item.id}{lacks}")
        found.extend(items)
    if save:
        save_items(found, save)
        _echo(f"saved {len(found)} item(s) to {save}")


@app.command()
def run(
    config: ConfigArg = None,
    source: SourceOpt = None,
    collections: CollectionsOpt = None,
    aoi: AoiOpt = None,
    year: YearOpt = None,
    season: SeasonOpt = None,
    crs: CrsOpt = None,
    resolution: ResOpt = None,
    products: ProductsOpt = None,
    out: OutOpt = None,
    s2_boa_offset: S2OffsetOpt = None,
    no_cloud_mask: NoMaskOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan (skip/compute per task) and stop")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="recompute tasks that are already done")] = False,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="use an existing Dask cluster, tcp://host:port")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="local cluster of N worker processes")] = None,
    force: Annotated[bool, typer.Option("--force", help="accept a plan beyond plan_checks (pixel count, grid much finer than the scenes, free disk) knowingly")] = False,
    log_file: LogFileOpt = None,
    log_format: LogFormatOpt = None,
) -> None:
    """Compute the products for every region x year of a config (or of ad-hoc flags).

    Non-interactive (cron, systemd): ends with one summary line and exit code 0 (all done),
    1 (some tasks failed, named), 2 (bad config, input or plan) or 75 (another run holds the lock).
    """
    from eqi.io.logs import configure_logging

    if log_format not in (None, "text", "json"):
        configure_logging()
        return _run_failed(ConfigError(f"--log-format must be text or json, got {log_format!r}"), None)
    try:
        configure_logging(log_file=log_file, fmt=log_format or "text")  # type: ignore[arg-type]
    except ConfigError as exc:
        configure_logging()
        return _run_failed(exc, None)
    try:
        results, cfg = _run(config, dict(source=source, collections=collections, aoi=aoi, year=year,
                                         season=season, crs=crs, resolution=resolution, products=products,
                                         out=out, s2_boa_offset=s2_boa_offset, no_cloud_mask=no_cloud_mask),
                            dry_run=dry_run, overwrite=overwrite, scheduler=scheduler, workers=workers,
                            force=force, log_file=log_file, log_format=log_format)  # fmt: skip
    except EqiError as exc:
        return _run_failed(exc, getattr(exc, "summary", None))
    except (KeyboardInterrupt, SystemExit, typer.Exit):
        raise
    except Exception as exc:  # an internal error: the traceback goes to the log, then the summary
        log.exception("internal error: %s: %s", type(exc).__name__, exc)
        _summary(EXIT_TASKS_FAILED, None)
        raise typer.Exit(EXIT_TASKS_FAILED) from None
    if not dry_run:
        from eqi.pipeline.run import summarize

        _summary(EXIT_OK, summarize(results), f"outputs in {cfg.out}")


def _run(config: Path | None, flags: dict[str, Any], *, dry_run: bool, overwrite: bool, scheduler: str | None,
         workers: int | None, force: bool, log_file: Path | None, log_format: str | None) -> tuple[list[Any], Any]:
    from eqi.io.logs import configure_logging

    with _heavy_imports():
        from eqi.io.catalog import resolve_collections
        from eqi.pipeline.cluster import dask_context
        from eqi.pipeline.run import run as run_job

    cfg = _build_config(config, **flags)
    if cfg.log.file is not None or cfg.log.format != "text" or cfg.log.level != "info":
        # flags beat the config file
        configure_logging(log_file=log_file or cfg.log.file, fmt=log_format or cfg.log.format,  # type: ignore[arg-type]
                          level=cfg.log.level)  # fmt: skip
    cfg = cfg.model_copy(update={"collections": resolve_collections(cfg.source, cfg.collections)})
    # --scheduler wins over dask.scheduler of the config; --workers alone means a local cluster
    scheduler = scheduler or (None if workers else cfg.dask.scheduler)
    with dask_context(scheduler, workers), _progress() as shown:
        # no terminal (cron, pipes): progress lines are log records; on a terminal the progress bar
        # shows them and the log file (if any) gets them too
        progress = _log_progress if shown is _echo else _bar_and_log(shown)
        results = run_job(cfg, overwrite=overwrite, dry_run=dry_run, force=force, progress=progress)
    return results, cfg


def _summary(code: int, summary: Any, note: str = "") -> None:
    """The last line of a run: exit code, counts, failed tasks (a log record sent to stdout)."""
    counts = summary.line() if summary is not None else "no task run"
    fields = {"eqi_exit_code": code, "eqi_stream": "stdout",
              "eqi_summary": summary.as_dict() if summary is not None else {"done": 0, "skipped": 0, "failed": 0, "failed_tasks": []}}  # fmt: skip
    level = logging.INFO if code == EXIT_OK else logging.ERROR
    log.log(level, "summary: exit %d: %s%s", code, counts, f"; {note}" if note else "", extra=fields)


def _run_failed(exc: EqiError, summary: Any) -> None:
    log.error("%s", exc, extra={"eqi_exit_code": exc.exit_code})
    _summary(exc.exit_code, summary)
    raise typer.Exit(exc.exit_code)


@app.command()
def status(
    out: Annotated[Path, typer.Argument(help="output folder of an eqi run")],
    as_json: Annotated[bool, typer.Option("--json", help="print the status as one JSON object")] = False,
) -> None:
    """List the tasks of the last run on OUT: done, failed (with the error), pending.

    Exit code 0 when no task failed, 1 when some did, 2 when OUT is not an eqi output folder.
    """
    import json

    from eqi.pipeline.status import format_status, read_status

    info = read_status(out.resolve())
    if as_json:
        _echo(json.dumps(info, ensure_ascii=False, default=str))
    else:
        for line in format_status(info):
            _echo(line)
    if info["counts"]["failed"]:
        raise typer.Exit(EXIT_TASKS_FAILED)


@archive_app.command("index")
def archive_index(
    dirs: Annotated[list[Path], typer.Argument(help="folders holding delivered scenes")],
    out: Annotated[Path, typer.Option("--out", help="stac-geoparquet file to write")],
) -> None:
    """Index USGS Landsat C2 L2 folders and Sentinel-2 L2A COG+JSON scenes into stac-geoparquet."""
    from eqi.io.catalog.archive import index_archive

    report = index_archive(list(dirs), out)
    _echo(str(report))


@aoi_app.command("list")
def aoi_list(
    level: Annotated[str | None, typer.Option("--level", help="province, prefecture or county")] = None,
) -> None:
    """List the regions in the built-in library and the zone layers of the user library."""
    from eqi.geo.regions import list_library
    from eqi.geo.zone_layers import list_zone_layers

    for row in list_library():
        if level and level not in str(row.get("level", "")):
            continue
        _echo("\t".join(str(row.get(k, "")) for k in ("library_name", "adcode", "name", "pinyin", "level")))
    if level and level not in "zone":
        return
    for row in list_zone_layers():
        _echo("\t".join([row["spec"], f"{row['features']} zone(s)", row["types"], "zone", row["source"]]))


@aoi_app.command("import")
def aoi_import(
    file: Annotated[Path, typer.Argument(help="vector file of zones (id, name, type, optional parent_adcode)")],
    as_: Annotated[str, typer.Option("--as", help="what the file holds: zones")] = "zones",
    name: Annotated[str | None, typer.Option("--name", help="layer name in the library (default: file stem)")] = None,
    layer: Annotated[str | None, typer.Option("--layer", help="layer of a multi-layer file")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="overwrite a layer of the same name")] = False,
) -> None:
    """Validate a zone layer and add it to the user library (EQI_AOI_LIBRARY or the user data folder)."""
    from eqi.geo.zone_layers import import_zones, read_zone_file

    if as_ != "zones":
        raise ConfigError(f"--as {as_}: only 'zones' layers can be imported (docs/zones.md)")
    path = import_zones(file, name=name, layer=layer, replace=replace)
    n = len(read_zone_file(path))
    _echo(f"imported {n} zone(s) as '{'zones:' + path.stem}' into {path.parent}")


@aoi_app.command("show")
def aoi_show(name: Annotated[str, typer.Argument(help="library name or vector file")]) -> None:
    """Show the regions an AOI spec resolves to (name, bounds, area)."""
    from pyproj import Geod

    from eqi.geo.regions import load_regions

    geod = Geod(ellps="WGS84")
    for region in load_regions(name):
        area = abs(geod.geometry_area_perimeter(region.geometry)[0]) / 1e6
        bounds = ", ".join(f"{v:.4f}" for v in region.geometry.bounds)
        _echo(f"{region.name}: {area:,.1f} km2, bounds [{bounds}]")


@aoi_app.command("export")
def aoi_export(
    name: Annotated[str, typer.Argument(help="library name, e.g. sichuan:counties")],
    out: Annotated[Path, typer.Option("--out", help="GeoJSON or GeoPackage to write")],
) -> None:
    """Write the regions of an AOI spec to a vector file (WGS 84)."""
    import geopandas as gpd

    from eqi.geo.regions import load_regions
    from eqi.io.atomic import atomic_path

    regions = load_regions(name)
    frame = gpd.GeoDataFrame(
        [{"name": r.name, **{k: v for k, v in r.attrs.items() if isinstance(v, str | int | float)}} for r in regions],
        geometry=[r.geometry for r in regions],
        crs="EPSG:4326",
    )
    driver = "GPKG" if out.suffix.lower() == ".gpkg" else "GeoJSON"
    with atomic_path(out) as tmp:
        frame.to_file(tmp, driver=driver, layer=out.stem)
    _echo(f"wrote {len(regions)} region(s) to {out}")


@app.command()
def assess(
    config: Annotated[Path, typer.Argument(help="YAML project config (configs/projects/*.yaml)")],
    project: Annotated[str | None, typer.Option("--project", help="assess only this project")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="output root (default: the config's out)")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="recompute projects that are already done")] = False,
) -> None:
    """Impact assessment of major projects (rings, matched controls, BACI, disturbance map)."""
    from eqi.pipeline.assess.config import load_assess_config
    from eqi.pipeline.assess.run import assess as assess_job

    cfg = load_assess_config(config, {"out": str(out.resolve()) if out else None})
    results = assess_job(cfg, project=project, overwrite=overwrite, progress=_echo)
    done = sum(r.status == "done" for r in results)
    _echo(f"finished: {done} assessed, {len(results) - done} skipped; outputs in {cfg.out / 'projects'}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="folder for the simulated archive and the outputs")] = Path("demo-out"),
    workers: Annotated[int | None, typer.Option("--workers", help="local cluster of N worker processes")] = None,
) -> None:
    """Build the offline demo archive (SIMULATED data over a real Sichuan county) and run on it."""
    with _heavy_imports():
        from eqi.pipeline.cluster import dask_context
        from eqi.pipeline.demo import run_demo
        from eqi.report import build_reports  # the demo ends with its reports and QGIS projects

    with dask_context(None, workers), _progress() as progress:
        run_demo(out.resolve(), progress=progress)
        built = build_reports(out.resolve(), progress=progress, qgis=False)  # the run wrote the projects
    _print_built(built)


@contextlib.contextmanager
def _progress(total: int | None = None) -> Iterator[Callable[[str], None]]:
    """A progress callback: a rich progress bar (advancing per finished step) on a terminal, plain
    lines otherwise (pipes, logs, CI).  Each message is also printed as a line."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        yield _echo
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("eqi", total=total)

        def report(message: str) -> None:
            bar.console.print(message, markup=False, highlight=False)
            step = message.startswith(("done ", "skip ", "FAILED ", "report ", "fitted "))
            bar.update(task, advance=1 if step else 0, description=message[:50])

        yield report


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="the output folder of a finished run (its `out`)")],
    lang: Annotated[str, typer.Option("--lang", help="zh (default) or en")] = "zh",
    region: Annotated[str | None, typer.Option("--region", help="only these regions, comma-separated")] = None,
    fmt: Annotated[str, typer.Option("--format", help="html, pdf or html,pdf")] = "html,pdf",
) -> None:
    """Rebuild every report (HTML + PDF) of a finished run from its outputs; nothing is recomputed."""
    from eqi.report import build_reports

    with _progress() as progress:
        built = build_reports(run_dir, lang=lang, regions=_split(region), formats=_split(fmt) or [], progress=progress)
    _print_built(built)


def _print_built(built: Any) -> None:
    _echo(f"reports: {built.index} ({len(built.reports)} reports, HTML + PDF, see docs/reports.md)")
    for path in built.qgis_projects:
        _echo(f"QGIS project: {path}")


def _usage_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(usage errors, aborts) of the command-line parser: Click's, and those of the copy of Click
    that typer >= 0.2x vendors (``typer.TyperException``, ``typer.Abort``), which Click's classes miss."""
    import click

    usage: list[type[BaseException]] = [click.exceptions.ClickException]
    if isinstance(getattr(typer, "TyperException", None), type):
        usage.append(typer.TyperException)
    return tuple(usage), tuple({click.exceptions.Abort, typer.Abort})


def main(argv: list[str] | None = None) -> None:
    """Console entry point: map eqi errors to exit codes and one-line messages."""
    from eqi.io.logs import configure_logging
    from eqi.pipeline.memory import limit_malloc_arenas

    limit_malloc_arenas()  # before any reading thread starts: the threads share one malloc arena
    configure_logging()
    # odc-loader logs every failed read; eqi reports the failure itself, once, with advice
    logging.getLogger("odc.loader").setLevel(logging.CRITICAL)
    # urllib3 logs each retry; a final failure is reported once by eqi with what to do
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=RuntimeWarning, message=".*(All-NaN|Mean of empty|invalid value).*")
    # GDAL's complaint about a truncated file precedes the read error eqi reports with advice
    from rasterio.errors import NotGeoreferencedWarning

    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)
    usage_errors, aborts = _usage_errors()
    try:
        code = app(args=argv, standalone_mode=False)
    except EqiError as exc:
        log.error("%s", exc)
        sys.exit(exc.exit_code)
    except aborts:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except usage_errors as exc:
        exc.show()
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["app", "main"]
