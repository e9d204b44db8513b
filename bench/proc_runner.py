"""Run one command as a whole process; report its wall time and peak memory as JSON.

    python bench/proc_runner.py REPORT.json CAP_MIB -- COMMAND ARG...

Standard library only, started as a small process of its own, so that the command's peak resident
memory is its own: on Linux a child's high-water mark starts at its parent's resident size at
``fork``/``exec`` (see ``bench.harness._peak_rss_mib``), about 10 MiB for this runner and several
hundred for the benchmark driver.  The report holds

* ``seconds`` — wall time from just before the spawn to the exit (interpreter start-up, imports,
  the work, writing the outputs);
* ``peak_mib`` — the command's resident high-water mark: ``ru_maxrss`` from ``wait4`` (the same
  quantity as ``VmHWM`` of ``/proc/PID/status``, read by the kernel at exit);
* ``returncode``, and ``out_of_memory: true`` when the resident size passed ``CAP_MIB`` (checked
  every 50 ms) and the command was killed; ``runner_rss_mib``, this runner's own resident size.

The command's stdout and stderr go to ``REPORT.stdout`` / ``REPORT.stderr``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def _status_kib(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run(report: Path, cap_mib: float, cmd: list[str]) -> dict:
    out = open(report.with_suffix(".stdout"), "wb")  # noqa: SIM115 - handed to the child
    err = open(report.with_suffix(".stderr"), "wb")  # noqa: SIM115
    runner_rss = _status_kib("self", "VmRSS") / 1024.0
    start = time.perf_counter()
    pid = os.posix_spawnp(cmd[0], cmd, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
        (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
    ])  # fmt: skip
    oom = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if not oom and _status_kib(pid, "VmRSS") / 1024.0 > cap_mib:
            oom = True
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    out.close()
    err.close()
    result = {
        "seconds": seconds,
        "peak_mib": usage.ru_maxrss / 1024.0,  # KiB on Linux
        "returncode": os.waitstatus_to_exitcode(status),
        "out_of_memory": oom,
        "cap_mib": cap_mib,
        "runner_rss_mib": round(runner_rss, 1),
    }
    report.write_text(json.dumps(result))
    return result


if __name__ == "__main__":
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        sys.exit("usage: python bench/proc_runner.py REPORT.json CAP_MIB -- COMMAND ARG...")
    run(Path(sys.argv[1]), float(sys.argv[2]), sys.argv[4:])
