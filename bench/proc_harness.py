"""Whole-process benchmark cases: ours and a baseline as commands, timed end to end.

Where :mod:`bench.harness` times a function inside a warmed-up process, a :class:`ProcCase` runs
each side as the command a user types (``eqi run ...`` vs ``python script.py ...``) through
:mod:`bench.proc_runner`: wall time from spawn to exit (start-up and imports included) and the
process's resident high-water mark.  Both sides get the same environment: the repository on
``PYTHONPATH``, ``threads`` Dask worker threads (``DASK_NUM_WORKERS``) and as many BLAS/OpenMP
threads.  The inputs are read once beforehand (untimed) so that every run finds them in the page
cache.  Each side runs ``repeats`` times, alternating; a row keeps the best time and the largest
peak.  A side whose resident size passes ``mem_cap_mib`` is killed and recorded as out of memory
(its time and peak are then ``None`` in the row, ``*_out_of_memory`` true).

After the first repeat a ``check(ours_dir, baseline_dir)`` callable compares the outputs and
returns figures for the row; it raises :class:`bench.harness.BenchMismatch` when they disagree.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import REPO_ROOT, BenchError

__all__ = [
    "ProcSide",
    "ProcCase",
    "ProcMeasurement",
    "run_process",
    "warm_page_cache",
    "run_proc_case",
    "default_mem_cap_mib",
]

RUNNER = Path(__file__).resolve().with_name("proc_runner.py")


@dataclass(frozen=True)
class ProcSide:
    """One side: a label and its command; ``{out}`` in an argument is the side's output folder."""

    label: str
    command: tuple[str, ...]


@dataclass(frozen=True)
class ProcCase:
    """Ours vs a baseline (or ours alone: ``baseline=None``), both as whole processes."""

    name: str
    size: str
    ours: ProcSide
    baseline: ProcSide | None
    inputs: tuple[Path, ...] = ()
    check: Callable[[Path, Path], dict[str, Any]] | None = None
    parse: Callable[[str], dict[str, Any]] | None = None  # ours' stdout -> figures for the row
    repeats: int = 2
    threads: int = 2
    mem_cap_mib: float | None = None
    timeout_s: float = 3600.0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcMeasurement:
    """One run of one side (seconds, MiB); ``out`` is its output folder."""

    seconds: float
    peak_mib: float
    out_of_memory: bool
    out: Path
    stdout: str = ""


def default_mem_cap_mib() -> float:
    """Kill a side above 75 % of the memory available now (at most 16 GiB)."""
    available = 16 * 1024.0
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) / 1024.0
    return round(min(16 * 1024.0, 0.75 * available))


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["DASK_NUM_WORKERS"] = str(threads)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def warm_page_cache(paths: Sequence[Path]) -> int:
    """Read every file once (untimed), so no run pays for a cold disk; returns bytes read."""
    total = 0
    for path in paths:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 24):
                total += len(chunk)
    return total


def run_process(
    side: ProcSide, workdir: Path, *, threads: int, mem_cap_mib: float, timeout_s: float
) -> ProcMeasurement:
    """Run one side once in ``workdir`` (its outputs in ``workdir/out``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "out"
    command = [arg.replace("{out}", str(out)) for arg in side.command]
    report = workdir / "process.json"
    runner = [sys.executable, str(RUNNER), str(report), str(mem_cap_mib), "--", *command]
    subprocess.run(runner, cwd=workdir, env=_env(threads), check=True, timeout=timeout_s)
    result = json.loads(report.read_text())
    if result["returncode"] != 0 and not result["out_of_memory"]:
        tail = "\n".join(report.with_suffix(".stderr").read_text().strip().splitlines()[-25:])
        raise BenchError(
            f"{side.label}: {' '.join(command)} failed (exit {result['returncode']}):\n{tail}"
        )
    return ProcMeasurement(
        seconds=float(result["seconds"]),
        peak_mib=float(result["peak_mib"]),
        out_of_memory=bool(result["out_of_memory"]),
        out=out,
        stdout=report.with_suffix(".stdout").read_text(errors="replace")[-20_000:],
    )


def _best(runs: list[ProcMeasurement]) -> tuple[float | None, float | None, bool]:
    ok = [m for m in runs if not m.out_of_memory]
    oom = len(ok) < len(runs)
    if not ok:
        return None, None, oom
    return min(m.seconds for m in ok), max(m.peak_mib for m in ok), oom


def run_proc_case(
    case: ProcCase, workdir: Path | None = None, log: Callable[[str], None] | None = print
) -> dict[str, Any]:
    """Run the case and return its row (fields as :func:`bench.harness.run_case` rows)."""
    say = log or (lambda _msg: None)
    cap = case.mem_cap_mib or default_mem_cap_mib()
    warm_page_cache(case.inputs)
    sides = [("ours", case.ours)] + ([("baseline", case.baseline)] if case.baseline else [])
    runs: dict[str, list[ProcMeasurement]] = {key: [] for key, _ in sides}
    figures: dict[str, Any] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="eqi-bench-e2e-", dir=workdir) as tmp:
        for r in range(case.repeats):
            for key, side in sides:
                if runs[key] and runs[key][-1].out_of_memory:
                    continue  # ran out of memory once: it will again
                m = run_process(
                    side, Path(tmp) / f"{key}-{r}", threads=case.threads, mem_cap_mib=cap,
                    timeout_s=case.timeout_s,
                )  # fmt: skip
                runs[key].append(m)
                what = "OUT OF MEMORY (killed)" if m.out_of_memory else f"{m.seconds:8.2f} s"
                say(
                    f"  {case.name} {case.size} {key:8s} run {r + 1}/{case.repeats}: {what}  "
                    f"peak {m.peak_mib:7.0f} MiB"
                )
            if r == 0 and case.check and case.baseline and not any(
                runs[k][0].out_of_memory for k in runs
            ):
                figures = case.check(runs["ours"][0].out, runs["baseline"][0].out)
            if r == 0 and case.parse and not runs["ours"][0].out_of_memory:
                figures |= case.parse(runs["ours"][0].stdout)
            for key, _ in sides:  # the outputs of a repeat are not kept
                shutil.rmtree(Path(tmp) / f"{key}-{r}" / "out", ignore_errors=True)
    ours_s, ours_peak, ours_oom = _best(runs["ours"])
    row: dict[str, Any] = {
        "name": case.name,
        "size": case.size,
        "ours_s": None if ours_s is None else round(ours_s, 3),
        "ours_peak_mib": None if ours_peak is None else round(ours_peak, 1),
        "ours": case.ours.label,
        "ours_runs_s": [round(m.seconds, 3) for m in runs["ours"]],
        "ours_runs_peak_mib": [round(m.peak_mib) for m in runs["ours"]],
        "ours_out_of_memory": ours_oom,
    }
    if case.baseline:
        base_s, base_peak, base_oom = _best(runs["baseline"])
        row |= {
            "baseline": case.baseline.label,
            "baseline_s": None if base_s is None else round(base_s, 3),
            "baseline_peak_mib": None if base_peak is None else round(base_peak, 1),
            "ratio": round(base_s / ours_s, 3) if base_s and ours_s else None,
            "peak_ratio": round(ours_peak / base_peak, 3) if base_peak and ours_peak else None,
            "baseline_runs_s": [round(m.seconds, 3) for m in runs["baseline"]],
            "baseline_runs_peak_mib": [round(m.peak_mib) for m in runs["baseline"]],
            "baseline_out_of_memory": base_oom,
        }
    row |= {
        "timing": (
            f"whole process (spawn to exit), best of {case.repeats}; peak = max ru_maxrss (VmHWM); "
            f"{case.threads} Dask threads each; inputs in the page cache"
        ),
        "mem_cap_mib": cap,
        **figures,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "measured": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **case.extra,
    }
    return row
