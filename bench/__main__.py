"""``python -m bench``: run the benchmarks, merge rows into bench/results.json, print a table.

Suites: ``composite`` and ``rsei`` (stages timed inside warmed-up processes, :mod:`bench.harness`),
``e2e`` (``eqi run`` vs a plain odc-stac script, whole processes) and ``tiles`` (``eqi run`` over
1, 4 and 16 tiles) and ``cluster`` (16 tiles on 1 vs 2 local Dask worker processes), the last three
through :mod:`bench.proc_harness`; ``assess`` (impact assessment of a 500 km line,
:mod:`bench.bench_assess`).  ``--only e2e`` (repeatable)
selects suites; ``--quick`` runs every suite on tiny inputs (a smoke test: rows go to
``bench/.cache/results-quick.json`` unless ``--results`` is given).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench import (
    bench_assess,
    bench_cluster,
    bench_composite,
    bench_e2e,
    bench_rsei,
    bench_tiles,
    bench_trend,
    bench_zonal,
    fixtures,
)
from bench.harness import RESULTS_PATH, Case, format_table, merge_rows, run_case
from bench.proc_harness import run_proc_case

SUITES = {
    "composite": bench_composite, "rsei": bench_rsei, "e2e": bench_e2e, "tiles": bench_tiles, "zonal": bench_zonal,
    "cluster": bench_cluster,
    "trend": bench_trend,
    "assess": bench_assess,
}

# --quick: the smallest inputs that exercise every path (keyword arguments of prepare / cases)
QUICK: dict[str, dict[str, Any]] = {
    "composite": {"size": 256, "dates": (3,)},
    "rsei": {"sizes": (512,)},
    "e2e": {"size": 512, "dates": (4, 8)},
    "tiles": {"tiles": (1, 4, 16), "dates": 3, "tile": 512},  # tile_size: a multiple of 512
    "zonal": {"res": 1000.0},
    "cluster": {"dates": 2, "tile": 512},
    "trend": {"size": 256},
    "assess": {"res": 300.0},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", choices=sorted(SUITES), action="append", help="run only this suite (repeatable)"
    )
    parser.add_argument("--repeats", type=int, help="runs per side (default: 3 stages, 2 e2e)")
    parser.add_argument("--quick", action="store_true", help="tiny inputs: a smoke test")
    parser.add_argument("--results", type=Path, help="results JSON file (default bench/results.json)")
    parser.add_argument("--cache", type=Path, default=fixtures.CACHE_DIR, help="input cache folder")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when an acceptance criterion fails"
    )
    args = parser.parse_args(argv)
    results = args.results or (
        args.cache / "results-quick.json" if args.quick else RESULTS_PATH
    )
    names = args.only or list(SUITES)
    if args.quick and not args.results:
        results.unlink(missing_ok=True)  # a smoke test starts afresh
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for name in names:
        suite = SUITES[name]
        options = QUICK[name] if args.quick else {}
        suite_start = time.perf_counter()
        print(f"[{name}] preparing inputs in {args.cache} ...", flush=True)
        suite.prepare(args.cache, **options)
        kwargs = dict(options)
        if args.repeats:
            kwargs["repeats"] = args.repeats
        new = []
        for case in suite.cases(args.cache, **kwargs):
            runner = run_case if isinstance(case, Case) else run_proc_case
            new.append(runner(case, log=lambda msg: print(msg, flush=True)))
        new = getattr(suite, "annotate", lambda r: r)(new)
        rows = merge_rows(new, results)
        print(f"[{name}] {time.perf_counter() - suite_start:.0f} s", flush=True)
    rows = rows or merge_rows([], results)
    print()
    print(format_table(rows))
    print("ratio = baseline_s / ours_s (above 1: ours faster); times: best run; peak: process")
    print("high-water mark incl. imports (MiB), (before) = RSS just before the timed work;")
    print("e2e and tiles rows time whole processes (no 'before'); OOM = killed above the cap.")
    failed = 0
    print()
    for name in names:
        for text, ok, detail in SUITES[name].checks(rows):
            failed += not ok
            print(f"{'PASS' if ok else 'FAIL'}  {text}: {detail}")
        for line in getattr(SUITES[name], "notes", lambda _rows: [])(rows):
            print(f"info  {line}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s; rows in {results}")
    return 1 if (failed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
