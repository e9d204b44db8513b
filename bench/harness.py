"""Benchmark harness: run "ours" and a baseline in fresh subprocesses, time them, check equality.

A side of a case is a *target* ``"module:function"`` called with JSON keyword arguments in a new
Python process.  The target does its set-up (imports, building items, loading the baseline's
in-memory arrays) and returns a zero-argument *work* callable returning ``{name: ndarray}``.
The worker process then measures:

* ``seconds`` — :func:`time.perf_counter` around ``work()`` only;
* ``rss_before_mib`` — resident set size just before ``work()`` (after imports and set-up);
* ``peak_mib`` — the process's resident high-water mark after ``work()`` (Linux ``VmHWM``; see
  :func:`_peak_rss_mib` for why not ``ru_maxrss``): it includes the imports and set-up, so
  ``peak_mib - rss_before_mib`` is what the work added;

and saves the arrays as ``result.npz``.  The parent checks that both sides' arrays are equal
(``numpy.testing.assert_allclose`` with the case's tolerances, NaN equal to NaN) and raises
:class:`BenchMismatch` otherwise.  Each side runs ``repeats`` times (alternating ours/baseline);
a row keeps the best time and the largest peak of the runs.  Rows are merged into
``bench/results.json`` (same name + size replaces the older row).
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from eqi.io.atomic import atomic_write_json

__all__ = [
    "Side",
    "Case",
    "Measurement",
    "BenchError",
    "BenchMismatch",
    "RESULTS_PATH",
    "run_side",
    "compare_results",
    "run_case",
    "merge_rows",
    "load_rows",
    "format_table",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).resolve().parent / "results.json"
_MIB = 1024.0 * 1024.0


class BenchError(RuntimeError):
    """A benchmark subprocess failed."""


class BenchMismatch(AssertionError):
    """Ours and the baseline gave different results: the comparison is void."""


@dataclass(frozen=True)
class Side:
    """One implementation of a case: a label and the target ``module:function`` + kwargs."""

    label: str
    target: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Case:
    """A benchmark case: ours vs a baseline on one input size."""

    name: str
    size: str
    ours: Side
    baseline: Side
    rtol: float = 1e-6
    atol: float = 0.0
    repeats: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Measurement:
    """One run of one side in its own process (seconds, MiB)."""

    seconds: float
    peak_mib: float
    rss_before_mib: float
    result: Path
    cpu_seconds: float | None = None  # process CPU time of work() (all threads): robust to other jobs' load


# ------------------------------------------------------------------------------------ worker


def _peak_rss_mib() -> float:
    """This process's resident high-water mark in MiB.

    Linux: ``VmHWM`` of ``/proc/self/status``.  ``getrusage().ru_maxrss`` is not used there: the
    kernel carries the *parent's* high-water mark across ``exec`` into the child's ``ru_maxrss``,
    so a child started by a 700 MiB parent reports at least 700 MiB (seen in this harness).
    Elsewhere ``ru_maxrss`` (bytes on macOS, KiB otherwise).
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / _MIB if sys.platform == "darwin" else peak / 1024.0


def _current_rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / _MIB


def _resolve(target: str) -> Callable[..., Callable[[], dict[str, np.ndarray]]]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _worker(target: str, kwargs_json: str, outdir: str) -> None:
    """Subprocess body: set up, measure ``work()``, save the arrays and the measurement."""
    work = _resolve(target)(**json.loads(kwargs_json))
    gc.collect()
    rss_before = _current_rss_mib()
    start, cpu_start = time.perf_counter(), time.process_time()
    result = work()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    peak = _peak_rss_mib()
    out = Path(outdir)
    np.savez(out / "result.npz", **{k: np.asarray(v) for k, v in result.items()})
    report = {"seconds": seconds, "peak_mib": peak, "rss_before_mib": rss_before, "cpu_seconds": cpu_seconds}
    (out / "measurement.json").write_text(json.dumps(report))


def probe(n: int) -> Callable[[], dict[str, np.ndarray]]:
    """A trivial target (``bench.harness:probe``) for testing the harness itself."""
    return lambda: {"x": np.arange(n, dtype=np.int64)}


# ------------------------------------------------------------------------------------ parent


def run_side(side: Side, outdir: Path, timeout_s: float = 1800.0) -> Measurement:
    """Run one side once in a fresh Python process; return its measurement."""
    outdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "bench.harness", side.target, json.dumps(side.kwargs), str(outdir)]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        raise BenchError(
            f"benchmark target {side.target} {side.kwargs} failed (exit {proc.returncode}):\n{tail}"
        )
    report = json.loads((outdir / "measurement.json").read_text())
    return Measurement(
        seconds=float(report["seconds"]),
        peak_mib=float(report["peak_mib"]),
        rss_before_mib=float(report["rss_before_mib"]),
        result=outdir / "result.npz",
        cpu_seconds=report.get("cpu_seconds"),
    )


def compare_results(ours: Path, baseline: Path, *, rtol: float, atol: float, what: str) -> None:
    """Raise :class:`BenchMismatch` unless both ``.npz`` hold the same arrays (NaN == NaN)."""
    with np.load(ours) as a, np.load(baseline) as b:
        if sorted(a.files) != sorted(b.files):
            raise BenchMismatch(
                f"{what}: ours returns {sorted(a.files)}, baseline {sorted(b.files)}"
            )
        for key in sorted(a.files):
            x, y = a[key], b[key]
            if x.shape != y.shape:
                raise BenchMismatch(
                    f"{what}: '{key}' shape {x.shape} (ours) vs {y.shape} (baseline)"
                )
            try:
                np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, equal_nan=True)
            except AssertionError as exc:
                raise BenchMismatch(
                    f"{what}: '{key}' differs between ours and the baseline\n{exc}"
                ) from None


def run_case(
    case: Case,
    workdir: Path | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run both sides ``case.repeats`` times (alternating), compare results; return the row."""
    say = log or (lambda _msg: None)
    runs: dict[str, list[Measurement]] = {"ours": [], "baseline": []}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="eqi-bench-", dir=workdir) as tmp:
        for r in range(case.repeats):
            for key, side in (("ours", case.ours), ("baseline", case.baseline)):
                m = run_side(side, Path(tmp) / f"{key}-{r}")
                runs[key].append(m)
                say(
                    f"  {case.name} {case.size} {key:8s} run {r + 1}/{case.repeats}: "
                    f"{m.seconds:8.2f} s  peak {m.peak_mib:7.0f} MiB  (before {m.rss_before_mib:.0f})"
                )
            if r == 0:
                compare_results(
                    runs["ours"][0].result,
                    runs["baseline"][0].result,
                    rtol=case.rtol,
                    atol=case.atol,
                    what=f"{case.name} {case.size}",
                )
    ours_s = min(m.seconds for m in runs["ours"])
    base_s = min(m.seconds for m in runs["baseline"])
    return {
        "name": case.name,
        "size": case.size,
        "ours_s": round(ours_s, 4),
        "ours_peak_mib": round(max(m.peak_mib for m in runs["ours"]), 1),
        "baseline": case.baseline.label,
        "baseline_s": round(base_s, 4),
        "baseline_peak_mib": round(max(m.peak_mib for m in runs["baseline"]), 1),
        "ratio": round(base_s / ours_s, 3),
        "ours": case.ours.label,
        "ours_rss_before_mib": round(min(m.rss_before_mib for m in runs["ours"]), 1),
        "baseline_rss_before_mib": round(min(m.rss_before_mib for m in runs["baseline"]), 1),
        "ours_runs_s": [round(m.seconds, 4) for m in runs["ours"]],
        "baseline_runs_s": [round(m.seconds, 4) for m in runs["baseline"]],
        "ours_runs_peak_mib": [round(m.peak_mib) for m in runs["ours"]],
        "baseline_runs_peak_mib": [round(m.peak_mib) for m in runs["baseline"]],
        **_cpu_columns(runs),
        "timing": f"best of {case.repeats} runs, each in a fresh process; peak = max VmHWM",
        "checked": f"assert_allclose rtol={case.rtol:g} atol={case.atol:g} equal_nan",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # other jobs' load
        "measured": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **case.extra,
    }


def _cpu_columns(runs: dict[str, list[Measurement]]) -> dict[str, Any]:
    """Best process CPU seconds per side and their ratio (wall times on a shared machine include
    waiting for a core; CPU time does not)."""
    cpu = {k: [m.cpu_seconds for m in v if m.cpu_seconds is not None] for k, v in runs.items()}
    if not cpu["ours"] or not cpu["baseline"] or min(cpu["ours"]) <= 0:
        return {}
    return {"ours_cpu_s": round(min(cpu["ours"]), 3), "baseline_cpu_s": round(min(cpu["baseline"]), 3),
            "cpu_ratio": round(min(cpu["baseline"]) / min(cpu["ours"]), 3)}  # fmt: skip


# ------------------------------------------------------------------------------------ results file


def load_rows(path: Path = RESULTS_PATH) -> list[dict[str, Any]]:
    """Rows of the results file (empty when it does not exist yet)."""
    if not path.is_file():
        return []
    rows = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(rows, list):
        raise BenchError(f"{path} must hold a JSON list of rows")
    return rows


def merge_rows(new: Iterable[dict[str, Any]], path: Path = RESULTS_PATH) -> list[dict[str, Any]]:
    """Write ``new`` rows into the file; a row with the same name + size replaces the older one."""
    rows = load_rows(path)
    index = {(r.get("name"), r.get("size")): i for i, r in enumerate(rows)}
    for row in new:
        key = (row["name"], row["size"])
        if key in index:
            rows[index[key]] = row
        else:
            index[key] = len(rows)
            rows.append(row)
    atomic_write_json(path, rows)
    return rows


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    """One table cell: the formatted value, ``OOM`` for a side killed for memory, else blank."""
    value = row.get(key)
    if value is None:
        side = key.split("_")[0]
        return "OOM" if row.get(f"{side}_out_of_memory") else ""
    return format(value, fmt)


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Plain-text table of rows (times in s, memory in MiB; ratio > 1: ours faster)."""
    head = (
        "name",
        "size",
        "ours s",
        "ours peak",
        "(before)",
        "base s",
        "base peak",
        "(before)",
        "ratio",
    )
    lines = []
    for r in rows:
        lines.append(
            (
                str(r["name"]),
                str(r["size"]),
                _cell(r, "ours_s", ".2f"),
                _cell(r, "ours_peak_mib", ".0f"),
                _cell(r, "ours_rss_before_mib", ".0f"),
                _cell(r, "baseline_s", ".2f"),
                _cell(r, "baseline_peak_mib", ".0f"),
                _cell(r, "baseline_rss_before_mib", ".0f"),
                _cell(r, "ratio", ".2f"),
            )
        )
    widths = [max(len(h), 0, *(len(line[i]) for line in lines)) for i, h in enumerate(head)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [fmt(head), "  ".join("-" * w for w in widths), *(fmt(line) for line in lines)]
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python -m bench.harness MODULE:FUNCTION KWARGS_JSON OUTDIR")
    _worker(*sys.argv[1:4])
