"""``python -m bench``: run every benchmark, merge rows into bench/results.json, print a table."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench import bench_composite, bench_rsei, bench_zonal, fixtures
from bench.harness import RESULTS_PATH, format_table, merge_rows, run_case

SUITES = {"composite": bench_composite, "rsei": bench_rsei, "zonal": bench_zonal}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--only", choices=sorted(SUITES), action="append", help="run only this suite"
    )
    parser.add_argument("--repeats", type=int, help="runs per side (default 3)")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH, help="results JSON file")
    parser.add_argument("--cache", type=Path, default=fixtures.CACHE_DIR, help="input cache folder")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when an acceptance criterion fails"
    )
    args = parser.parse_args(argv)
    names = args.only or list(SUITES)
    start = time.perf_counter()
    rows = []
    for name in names:
        suite = SUITES[name]
        print(f"[{name}] preparing inputs in {args.cache} ...", flush=True)
        suite.prepare(args.cache)
        kwargs = {"repeats": args.repeats} if args.repeats else {}
        for case in suite.cases(args.cache, **kwargs):
            row = run_case(case, log=lambda msg: print(msg, flush=True))
            rows = merge_rows([row], args.results)
    rows = rows or merge_rows([], args.results)
    print()
    print(format_table(rows))
    print("ratio = baseline_s / ours_s (above 1: ours faster); times: best run; peak: process")
    print("high-water mark incl. imports (MiB), (before) = RSS just before the timed work.")
    failed = 0
    print()
    for name in names:
        for text, ok, detail in SUITES[name].checks(rows):
            failed += not ok
            print(f"{'PASS' if ok else 'FAIL'}  {text}: {detail}")
        for line in getattr(SUITES[name], "notes", lambda _rows: [])(rows):
            print(f"info  {line}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s; rows in {args.results}")
    return 1 if (failed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
