"""How tile x year tasks are executed: here, one after another, or one Dask task per tile on a
dask.distributed cluster, results gathered as they complete.

* **Here** (no cluster): :func:`execute_tile` for each job in order, progress printed as it comes;
  the chunks of a tile run on Dask's threaded scheduler, as before.
* **On a cluster** (``--scheduler tcp://...``, ``dask.scheduler`` in the config, or ``--workers N``):
  the plan and each year's scenes are sent to every worker once, then ``client.submit(execute_tile, ...)``
  per tile and year, with plain data arguments.  Inside a task the tile's chunks run on the
  worker's own threads (a thread pool of the worker's ``nthreads``, shared by its tasks), never as
  a second distributed graph, so a worker holds at most ``nthreads`` tiles and its memory limit
  (the nanny's) bounds what it does.  The task log names the worker of each tile.

Faults: a tile whose reads fail transiently (HTTP 5xx/429, resets, timeouts that GDAL's own
retries did not absorb) is retried ``attempts`` times with exponential backoff, GDAL's HTTP cache
cleared in between; a read that keeps failing, or fails for good (404, a truncated or corrupt
file), fails the tile with an :class:`~eqi.errors.AssetReadError` naming item, asset and file.
Outputs do not depend on where a tile ran.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dask
from rasterio.errors import RasterioError

from eqi.errors import AssetReadError, EqiError, InputError
from eqi.geo.grid import TileId
from eqi.io.native_read import release_handles
from eqi.io.read_errors import clear_http_cache, failed_assets, forget, is_transient, probe_asset
from eqi.pipeline.memory import release_memory
from eqi.pipeline.plan import Plan
from eqi.pipeline.tile_stage import YearScenes, items_for_tile, run_tile

__all__ = ["TileJob", "TileReport", "execute_tile", "run_tile_jobs", "RETRY_ATTEMPTS", "RETRY_BACKOFF"]

log = logging.getLogger("eqi.run")

RETRY_ATTEMPTS = 3  # tries of a tile whose reads fail transiently
RETRY_BACKOFF = 2.0  # seconds before the 2nd try, doubled for each further one
PROBE_LIMIT = 500  # assets opened to find the broken one when no read record names it


@dataclass(frozen=True)
class TileJob:
    """One tile x year to compute (plain data: it travels to a worker)."""

    year: int
    tile: TileId
    task_id: str
    references: Mapping[str, Callable[..., Any]] = field(default_factory=dict)


@dataclass
class TileReport:
    """What became of a job: ``error`` None when its ``item.json`` is written."""

    year: int
    tile: TileId
    error: EqiError | None = None
    worker: str | None = None
    seconds: float = 0.0
    attempts: int = 1
    messages: list[str] = field(default_factory=list)


def _assets(plan: Plan, tile: TileId, scenes: YearScenes) -> dict[str, tuple[str, str]]:
    """href -> (item id, asset key) of every scene asset the tile may read."""
    geobox = plan.stack.grid.tile_geobox(tile)
    items = [*scenes.main, *(i for extra in scenes.extra.values() for i in extra)]
    return {a.href: (item.id, key) for item in items_for_tile(items, geobox) for key, a in item.assets.items()
            if not key.startswith("mtl") and "metadata" not in (a.roles or [])}  # fmt: skip


def _read_error(tile: TileId, year: int, exc: Exception, assets: Mapping[str, tuple[str, str]], *,
                probe: bool) -> AssetReadError:  # fmt: skip
    """The error naming the assets that could not be read (probing them when no record names one)."""
    bad = failed_assets(assets)
    if not bad and probe:
        for href, (item, key) in list(assets.items())[:PROBE_LIMIT]:
            reason = probe_asset(href)
            if reason is not None:
                bad.append((item, key, reason))
    href_of = {v: h for h, v in assets.items()}
    if not bad:
        return AssetReadError(
            f"tile {tile} {year}: cannot read an input raster ({exc}); a scene file may be truncated, "
            "corrupt or unreachable: check the scenes of this tile, re-download them and re-index the "
            "archive (eqi archive index) if they are local, then rerun (finished tasks are kept)"
        )
    named = "; ".join(f"item {i} asset {k} ({href_of.get((i, k), '?')}): {m}" for i, k, m in bad)
    return AssetReadError(
        f"tile {tile} {year}: cannot read an input raster: {named}. The file is missing, truncated or "
        "corrupt, or its server keeps failing: fix or re-download it (and re-index local deliveries: "
        "eqi archive index), then rerun, which computes only the failed tasks"
    )


def execute_tile(
    plan: Plan,
    job: TileJob,
    scenes: YearScenes,
    *,
    materialize: Any = None,
    progress: Callable[[str], None] | None = None,
    attempts: int | None = None,
    backoff: float | None = None,
) -> TileReport:
    """Compute one tile x year (``run_tile``), retrying transient read failures; never raises for
    a failed tile: the error is in the report.  On a Dask worker the messages are collected in the
    report (and the worker named) instead of printed.  ``attempts``, ``backoff`` (seconds):
    default :data:`RETRY_ATTEMPTS`, :data:`RETRY_BACKOFF`."""
    attempts = RETRY_ATTEMPTS if attempts is None else attempts
    backoff = RETRY_BACKOFF if backoff is None else backoff
    worker = _worker_name()
    messages: list[str] = []
    say = progress if progress is not None and worker is None else messages.append
    report = TileReport(job.year, job.tile, worker=worker, messages=messages)
    t0 = time.perf_counter()
    assets = _assets(plan, job.tile, scenes)
    with _tile_scheduler(worker is not None):
        for attempt in range(1, max(attempts, 1) + 1):
            report.attempts = attempt
            forget(assets)
            try:
                run_tile(plan, job.tile, scenes, task_id=job.task_id, references=job.references,
                         progress=say, materialize=materialize)  # fmt: skip
                report.error = None
                break
            except RasterioError as exc:  # reads (and rasterio writes: then no asset is named)
                transient = is_transient(str(exc), assets) and attempt < attempts
                if not transient:
                    report.error = _read_error(job.tile, job.year, exc, assets, probe=True)
                    break
                wait = backoff * 2 ** (attempt - 1)
                say(f"  tile {job.tile} {job.year}: read failed ({exc}); retry {attempt + 1}/{attempts} in {wait:g} s")
                clear_http_cache()
                time.sleep(wait)
            except EqiError as exc:
                report.error = exc
                break
            except Exception as exc:  # a library error: the tile fails, the run goes on
                log.debug("tile %s %s failed", job.tile, job.year, exc_info=True)
                report.error = InputError(f"{type(exc).__name__}: {exc}")
                break
    release_memory()  # the tile's ~100 MB freed and returned now, before the next tile reads
    report.seconds = time.perf_counter() - t0
    return report


def run_tile_jobs(
    plan: Plan,
    jobs: Sequence[TileJob],
    scenes_of: Mapping[int, YearScenes],
    *,
    materialize: Any = None,
    progress: Callable[[str], None] = print,
    client: Any = None,
) -> Iterator[TileReport]:
    """Reports of ``jobs``: in order here, or as they complete on the cluster of ``client``.

    Sources without files (Sentinel Hub: ``materialize``) stay in this process, where their
    request cache and credentials are.
    """
    if client is None or materialize is not None or not jobs:
        try:
            for job in jobs:
                yield execute_tile(plan, job, scenes_of[job.year], materialize=materialize, progress=progress)
        finally:  # the scene files the tiles kept open (~36 MiB for 16 dates x 8 bands): no scene read follows
            if release_handles():
                release_memory()
        return
    from distributed import as_completed

    # on every worker: no worker is preferred for holding them (tiles spread by load alone)
    plan_f = client.scatter(plan, broadcast=True, hash=False)
    scenes_f = {y: client.scatter(scenes_of[y], broadcast=True, hash=False) for y in sorted({j.year for j in jobs})}
    # tiles dealt round-robin over the workers, loosely (allow_other_workers): the scheduler may
    # still move them, but a short run does not end up on the worker that happened to answer first
    workers = sorted(client.scheduler_info().get("workers", {})) or [None]
    futures = [client.submit(execute_tile, plan_f, job, scenes_f[job.year], key=f"eqi-tile-{job.task_id}-{job.year}-{job.tile}",
                             pure=False, retries=0, workers=workers[k % len(workers)], allow_other_workers=True)
               for k, job in enumerate(jobs)]  # fmt: skip
    for future in as_completed(futures):
        try:
            report = future.result()
        except Exception as exc:  # the task itself broke (a worker died, unpicklable data)
            job = jobs[futures.index(future)]
            report = TileReport(job.year, job.tile, error=InputError(f"tile task failed on the cluster: "
                                                                      f"{type(exc).__name__}: {exc}"))  # fmt: skip
        for line in report.messages:
            progress(line)
        if report.error is None:
            progress(f"  tile {report.tile} {report.year}: done on worker {report.worker} in {report.seconds:.1f} s")
        yield report


def _worker_name() -> str | None:
    """Name of the dask.distributed worker running this task, or None outside one."""
    import sys

    if "distributed" not in sys.modules:
        return None
    from distributed import get_worker

    try:
        return str(get_worker().name)
    except ValueError:
        return None


_POOL_LOCK = threading.Lock()
_POOL: list[Any] = []  # [executor, users, previous config]


@contextmanager
def _tile_scheduler(on_worker: bool) -> Iterator[None]:
    """On a worker: the tile's chunks on a thread pool of the worker's ``nthreads`` (shared by
    its concurrent tile tasks), not a nested distributed graph.  Elsewhere: unchanged."""
    if not on_worker:
        yield
        return
    from distributed import get_worker

    with _POOL_LOCK:
        if not _POOL:
            nthreads = max(int(get_worker().state.nthreads), 1)
            pool = ThreadPoolExecutor(nthreads, thread_name_prefix="eqi-tile")
            ctx = dask.config.set(scheduler="threads", pool=pool)
            ctx.__enter__()
            _POOL.extend([pool, 0, ctx])
        _POOL[1] += 1
    try:
        yield
    finally:
        with _POOL_LOCK:
            _POOL[1] -= 1
            if _POOL[1] == 0:
                pool, _, ctx = _POOL
                ctx.__exit__(None, None, None)
                pool.shutdown(wait=False)
                _POOL.clear()
                release_handles()  # no read runs on this worker now: its kept scene files are closed
