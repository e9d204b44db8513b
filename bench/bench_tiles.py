"""Tile scaling: ``eqi run --products ndvi`` over an area of 1, 4 and 16 tiles, whole processes.

Inputs: the synthetic archive of :mod:`bench.archive_fixtures` at 4096 x 4096 px (``content=
"ndvi"``: red, nir and QA_PIXEL carry texture), ``DATES`` dates.  The areas are squares of 1024,
2048 and 4096 px from the grid's corner, which sits on a multiple of 1024 px x 30 m: with eqi's
tile grid of ``tile_size: 1024`` px anchored at the CRS origin, they are exactly 1, 4 and 16 tiles.
``tile_size`` is written into the run configuration when :class:`eqi.config.RunConfig` has that
field; before tiles land, the same areas run as one task each (row field ``tiles_in_config``).

Rows ``tiles_scaling`` (one per area): ``ours_s`` and ``ours_peak_mib`` of the whole process,
``s_per_tile``, and relative to the 1-tile run ``time_per_tile_vs_1`` and ``peak_vs_1``; a row
``start-up (--dry-run)`` times the same command with ``--dry-run`` (imports, search, plan), from
which ``s_per_tile_net`` / ``net_time_per_tile_vs_1`` leave the fixed start-up cost out.  In the
table, the "baseline" of a row is the 1-tile run scaled to the area: ``baseline_s`` = 1-tile time
x tiles, ``baseline_peak_mib`` = 1-tile peak, so ``ratio`` >= 1/1.15 is the time criterion.
Acceptance (issue 6): time per tile within 1.15x and peak within 1.3x of the 1-tile run's.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any

from bench import archive_fixtures as af
from bench import fixtures
from bench.bench_e2e import write_eqi_config
from bench.proc_harness import ProcCase, ProcSide

__all__ = ["NAME", "prepare", "cases", "annotate", "checks", "tiles_supported"]

NAME = "tiles_scaling"
TILE = 1024
TILES = (1, 4, 16)
DATES = 8
THREADS = 2
MAX_TIME_PER_TILE = 1.15
MAX_PEAK = 1.3


def tiles_supported() -> bool:
    """True once the run configuration has a ``tile_size`` field."""
    from eqi.config import RunConfig

    return "tile_size" in RunConfig.model_fields


def _scene_size(tiles: tuple[int, ...], tile: int) -> int:
    return tile * math.isqrt(max(tiles))


def prepare(
    cache: Path = fixtures.CACHE_DIR,
    tiles: tuple[int, ...] = TILES,
    dates: int = DATES,
    tile: int = TILE,
) -> None:
    """Write the scenes and the archive (once; untimed)."""
    af.landsat_archive(dates, _scene_size(tiles, tile), cache, content="ndvi")


def cases(
    cache: Path = fixtures.CACHE_DIR,
    tiles: tuple[int, ...] = TILES,
    dates: int = DATES,
    repeats: int = 2,
    tile: int = TILE,
) -> list[ProcCase]:
    """One case per area (ours only)."""
    archive = af.landsat_archive(dates, _scene_size(tiles, tile), cache, content="ndvi")
    configs = cache / "tiles-configs"
    tiled = tiles_supported()
    out = []
    for n in tiles:
        side = math.isqrt(n)
        if side * side != n:
            raise ValueError(f"tile counts must be squares, not {n}")
        pixels = tile * side
        aoi = af.aoi_file(pixels, configs / f"aoi-{pixels}.geojson", name="bench-area")
        config = write_eqi_config(
            configs / f"eqi-{pixels}-{dates}.yaml", archive.parquet, aoi,
            {"tile_size": tile} if tiled else None,
        )  # fmt: skip
        command = (sys.executable, "-m", "eqi", "run", str(config), "--products", "ndvi",
                   "--out", "{out}")  # fmt: skip
        out.append(
            ProcCase(
                name=NAME,
                size=f"{n} tiles ({pixels}x{pixels})",
                ours=ProcSide(f"eqi run --products ndvi, {dates} dates", command),
                baseline=None,
                inputs=tuple(archive.files),
                repeats=repeats,
                threads=THREADS,
                parse=_tasks,
                extra={"tiles": n, "tile_px": tile, "pixels": f"{pixels}x{pixels}",
                       "dates": dates, "tiles_in_config": tiled},
            )  # fmt: skip
        )
    # start-up: the same command with --dry-run on the largest area (imports, search, plan)
    out.append(
        ProcCase(
            name=NAME,
            size=f"start-up (--dry-run, {pixels}x{pixels})",
            ours=ProcSide("eqi run --dry-run (imports, archive search, plan; no computation)",
                          (*command[:-2], "--dry-run", *command[-2:])),
            baseline=None,
            repeats=repeats,
            threads=THREADS,
            extra={"tiles": 0, "tile_px": tile, "dates": dates, "tiles_in_config": tiled},
        )  # fmt: skip
    )
    return out


def _tasks(stdout: str) -> dict[str, Any]:
    """From eqi's progress lines: tile-years computed (``  tile x+020y-222 2021: ...``) and the
    region tasks of the closing line ``finished: N computed, M skipped``."""
    out: dict[str, Any] = {"tiles_computed": len(re.findall(r"^\s*tile \S+ \d{4}:", stdout, re.M))}
    found = re.search(r"finished: (\d+) computed", stdout)
    if found:
        out["tasks_computed"] = int(found.group(1))
    return out


def annotate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add per-tile time and the figures relative to the 1-tile row (same run)."""
    mine = {r["tiles"]: r for r in rows if r["name"] == NAME}
    one = mine.get(1)
    if not one or one.get("ours_s") is None:
        return rows
    startup = mine.get(0, {}).get("ours_s")
    for n, r in mine.items():
        if n == 0 or r.get("ours_s") is None:
            continue
        r["s_per_tile"] = round(r["ours_s"] / n, 3)
        r["time_per_tile_vs_1"] = round(r["s_per_tile"] / one["ours_s"], 3)
        if startup is not None and one["ours_s"] > startup:
            # without the fixed start-up cost (the --dry-run row): the work per tile
            r["s_per_tile_net"] = round((r["ours_s"] - startup) / n, 3)
            r["net_time_per_tile_vs_1"] = round(r["s_per_tile_net"] / (one["ours_s"] - startup), 3)
        r["peak_vs_1"] = round(r["ours_peak_mib"] / one["ours_peak_mib"], 3)
        r["baseline"] = "the 1-tile run, scaled to the area (time x tiles, same peak)"
        r["baseline_s"] = round(one["ours_s"] * n, 3)
        r["baseline_peak_mib"] = one["ours_peak_mib"]
        r["ratio"] = round(r["baseline_s"] / r["ours_s"], 3)
    return rows


def checks(rows: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """Acceptance (issue 6): time/tile <= 1.15x and peak <= 1.3x of the 1-tile run."""
    mine = sorted(
        (r for r in rows if r["name"] == NAME and "peak_vs_1" in r), key=lambda r: r["tiles"]
    )
    out = []
    for r in mine:
        if r.get("tiles_in_config") and "tiles_computed" in r:
            out.append(
                (
                    f"tiles: the {r['tiles']}-tile area is computed as {r['tiles']} tile tasks",
                    r["tiles_computed"] == r["tiles"],
                    f"{r['tiles_computed']} tile lines in eqi's output",
                )
            )
        if r["tiles"] == 1:
            continue
        note = "" if r.get("tiles_in_config") else " (tiles not yet in the pipeline)"
        net = (
            f", x{r['net_time_per_tile_vs_1']:.2f} without start-up"
            if "net_time_per_tile_vs_1" in r else ""
        )  # fmt: skip
        out.append(
            (
                f"tiles: {r['tiles']} tiles, time per tile <= {MAX_TIME_PER_TILE}x the 1-tile run's",
                r["time_per_tile_vs_1"] <= MAX_TIME_PER_TILE,
                f"x{r['time_per_tile_vs_1']:.2f}{net}{note}",
            )
        )
        out.append(
            (
                f"tiles: {r['tiles']} tiles, peak memory <= {MAX_PEAK}x the 1-tile run's",
                r["peak_vs_1"] <= MAX_PEAK,
                f"x{r['peak_vs_1']:.2f} ({r['ours_peak_mib']:.0f} MiB){note}",
            )
        )
    return out
