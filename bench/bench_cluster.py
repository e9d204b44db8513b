"""Tiles over Dask worker processes: ``eqi run --products ndvi --workers 2`` vs ``--workers 1`` on
a 16-tile area, whole processes (local cluster start-up included).

Inputs: the synthetic archive of :mod:`bench.archive_fixtures` (``content="ndvi"``), a square of
4 x 4 tiles of ``tile`` px (``tile_size``) from the grid's corner, ``dates`` dates.  ``--workers N``
starts a LocalCluster of N single-threaded worker processes; each tile x year is one Dask task
(:mod:`eqi.pipeline.tile_tasks`).  Row ``cluster_workers``: ``ours`` = 2 workers, ``baseline`` =
1 worker, ``ratio`` = 1-worker time / 2-worker time (ideal 2 on two free cores), and the check
that every COG of the two runs is byte-identical (``identical_files``).  Peaks are the client
process's (workers are separate processes).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from bench import archive_fixtures as af
from bench import fixtures
from bench.bench_e2e import write_eqi_config
from bench.harness import BenchMismatch
from bench.proc_harness import ProcCase, ProcSide

__all__ = ["NAME", "prepare", "cases", "checks", "compare_outputs"]

NAME = "cluster_workers"
TILE = 512
SIDE = 4  # tiles per side: 16 tiles
DATES = 3
MIN_RATIO = 1.2  # two workers must beat one by this much (two cores, busy machine)


def _size(tile: int) -> int:
    return tile * SIDE


def prepare(cache: Path = fixtures.CACHE_DIR, dates: int = DATES, tile: int = TILE) -> None:
    """Write the scenes and the archive (once; untimed)."""
    af.landsat_archive(dates, _size(tile), cache, content="ndvi")


def compare_outputs(ours: Path, baseline: Path) -> dict[str, Any]:
    """Every COG of both runs, byte for byte; raise :class:`BenchMismatch` when one differs."""
    a = {p.relative_to(ours): p for p in sorted(ours.rglob("*.tif"))}
    b = {p.relative_to(baseline): p for p in sorted(baseline.rglob("*.tif"))}
    if a.keys() != b.keys() or not a:
        raise BenchMismatch(f"different COGs: {sorted(map(str, a.keys() ^ b.keys()))[:5]} ({len(a)} vs {len(b)})")
    differ = [str(k) for k in a if a[k].read_bytes() != b[k].read_bytes()]
    if differ:
        raise BenchMismatch(f"{len(differ)} COGs differ, e.g. {differ[:3]}")
    return {"identical_files": len(a)}


def _workers(stdout: str) -> dict[str, Any]:
    found = re.findall(r"^\s*tile \S+ \d{4}: done on worker (\S+)", stdout, re.M)
    return {"tiles_computed": len(found), "workers_used": len(set(found))}


def cases(
    cache: Path = fixtures.CACHE_DIR, dates: int = DATES, repeats: int = 2, tile: int = TILE
) -> list[ProcCase]:
    archive = af.landsat_archive(dates, _size(tile), cache, content="ndvi")
    configs = cache / "cluster-configs"
    aoi = af.aoi_file(_size(tile), configs / f"aoi-{_size(tile)}.geojson", name="bench-area")
    config = write_eqi_config(configs / f"eqi-{_size(tile)}-{dates}.yaml", archive.parquet, aoi, {"tile_size": tile})
    command = (sys.executable, "-m", "eqi", "run", str(config), "--products", "ndvi", "--out", "{out}")
    return [
        ProcCase(
            name=NAME,
            size=f"{SIDE * SIDE} tiles of {tile} px, {dates} dates",
            ours=ProcSide("eqi run --workers 2 (tiles as Dask tasks)", (*command, "--workers", "2")),
            baseline=ProcSide("eqi run --workers 1", (*command, "--workers", "1")),
            inputs=tuple(archive.files),
            check=compare_outputs,
            parse=_workers,
            repeats=repeats,
            threads=1,
            extra={"tiles": SIDE * SIDE, "tile_px": tile, "dates": dates},
        )
    ]


def checks(rows: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    out = []
    for r in rows:
        if r["name"] != NAME or r.get("ratio") is None:
            continue
        out.append((f"cluster: 2 workers vs 1 on {r['tiles']} tiles, ratio >= {MIN_RATIO}", r["ratio"] >= MIN_RATIO,
                    f"x{r['ratio']:.2f} ({r['baseline_s']:.1f} s -> {r['ours_s']:.1f} s), "
                    f"{r.get('identical_files', 0)} COGs identical, {r.get('workers_used')} workers used"))  # fmt: skip
    return out
