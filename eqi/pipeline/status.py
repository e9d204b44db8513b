"""What an output folder says about its tasks: done, failed, pending (``eqi status OUT``).

Three records, all small JSON files, none of them a done marker:

* ``OUT/.eqi-run.json``: the region x year tasks the last run planned (ids, regions, years,
  folders), when it started and finished, and its summary.  Written once the run holds the lock.
* ``OUT/<region>/<year>/eqi-failure.json``: the failure record of a task (its id, the error
  message, redacted, the exit code, the time).  Written when the task fails, removed when it is
  later done or skipped as done.
* ``OUT/<region>/<year>/item.json``: the done marker (:func:`eqi.pipeline.tasks.check_done`).

A task is *done* when its item names its id and every asset is present with the recorded size,
*failed* when its failure record names its id (and it is not done), else *pending* (never run,
interrupted, or a failure record of an older task id).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from eqi.errors import InputError
from eqi.io.atomic import atomic_write_json
from eqi.pipeline.lock import LOCK_NAME, pid_alive
from eqi.pipeline.tasks import check_done

__all__ = [
    "FAILURE_NAME",
    "RUN_RECORD",
    "write_failure",
    "clear_failure",
    "write_run_record",
    "finish_run_record",
    "read_status",
    "format_status",
]

FAILURE_NAME = "eqi-failure.json"
RUN_RECORD = ".eqi-run.json"


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def write_failure(task_dir: Path, task_id: str, *, region: str, year: int, message: str, exit_code: int) -> Path:
    """Record that task ``task_id`` failed (beside where its ``item.json`` would be)."""
    task_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(task_dir / FAILURE_NAME, {
        "task_id": task_id, "region": region, "year": int(year), "state": "failed",
        "failed_at": _now(), "exit_code": int(exit_code), "error": message,
    })  # fmt: skip


def clear_failure(task_dir: Path) -> None:
    """Remove a task's failure record (it is done now)."""
    (task_dir / FAILURE_NAME).unlink(missing_ok=True)


def write_run_record(out: Path, tasks: Iterable[Mapping[str, Any]]) -> Path:
    """``OUT/.eqi-run.json``: the tasks planned by the run starting now (under the lock)."""
    rows = [{"task_id": t["task_id"], "region": t["region"], "year": int(t["year"]),
             "dir": Path(t["dir"]).relative_to(out).as_posix()} for t in tasks]  # fmt: skip
    return atomic_write_json(out / RUN_RECORD, {"started": _now(), "pid": os.getpid(), "tasks": rows})


def finish_run_record(out: Path, summary: Mapping[str, Any]) -> None:
    """Add the end time and summary to the run record."""
    path = out / RUN_RECORD
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
        atomic_write_json(path, {**data, "finished": _now(), "summary": dict(summary)})


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _lock_holder(out: Path) -> dict[str, Any] | None:
    """The live run holding ``OUT``'s lock (pid, host, started), or None."""
    import fcntl

    path = out / LOCK_NAME
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_json(path) or {}
            return {k: info.get(k) for k in ("pid", "host", "started")}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def read_status(out: Path) -> dict[str, Any]:
    """The state of every task of the last run on ``out`` (see the module docstring).

    Without a run record (a folder written by an older eqi), the tasks are those with an
    ``item.json`` or a failure record; pending tasks cannot be known then.
    """
    out = Path(out)
    if not out.is_dir():
        raise InputError(f"{out} is not a folder; give the output folder of an eqi run (its --out)")
    record = _read_json(out / RUN_RECORD)
    rows: list[dict[str, Any]]
    if record is not None:
        rows = [dict(r) for r in record.get("tasks", [])]
    else:
        found = sorted({p.parent for p in (*out.glob("*/*/item.json"), *out.glob(f"*/*/{FAILURE_NAME}"))})
        rows = []
        for d in found:
            data = _read_json(d / "item.json") or {}
            fail = _read_json(d / FAILURE_NAME) or {}
            tid = (data.get("properties") or {}).get("eqi:task_id") or fail.get("task_id")
            if tid:
                rows.append({"task_id": tid, "region": d.parent.name, "year": int(d.name) if d.name.isdigit() else d.name,
                             "dir": d.relative_to(out).as_posix()})  # fmt: skip
        if not rows:
            raise InputError(f"{out} holds no eqi run (no {RUN_RECORD}, no task folders)")
    tasks = []
    for row in rows:
        task_dir = out / row.pop("dir")
        state, message = "pending", ""
        if check_done(task_dir / "item.json", row["task_id"]) is None:
            state = "done"
        else:
            fail = _read_json(task_dir / FAILURE_NAME)
            if fail is not None and fail.get("task_id") == row["task_id"]:
                state, message = "failed", str(fail.get("error", ""))
                row["failed_at"] = fail.get("failed_at")
        tasks.append({**row, "state": state, "message": message})
    counts = {s: sum(t["state"] == s for t in tasks) for s in ("done", "failed", "pending")}
    holder = _lock_holder(out)
    run = {k: record.get(k) for k in ("started", "finished", "pid", "summary")} if record else {}
    if record and not record.get("finished") and holder is None:
        run["interrupted"] = True
        with contextlib.suppress(TypeError, ValueError):
            run["interrupted"] = not pid_alive(int(record.get("pid")))
    return {"out": str(out), "running": holder, "last_run": run, "counts": counts, "tasks": tasks}


def format_status(status: Mapping[str, Any]) -> list[str]:
    """Text lines of :func:`read_status`: one per task, then the counts."""
    lines = []
    holder = status.get("running")
    if holder:
        lines.append(f"a run is in progress: pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}")
    run = status.get("last_run") or {}
    if run.get("interrupted"):
        lines.append(f"the last run (started {run.get('started')}) ended without finishing")
    for t in status["tasks"]:
        extra = f"  {t['message']}" if t["message"] else ""
        lines.append(f"{t['state']:8s} {t['region']} {t['year']}  task {t['task_id']}{extra}")
    c = status["counts"]
    lines.append(f"{c['done']} done, {c['failed']} failed, {c['pending']} pending ({status['out']})")
    return lines
