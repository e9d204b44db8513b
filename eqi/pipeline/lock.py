"""The run lock: one eqi run per output folder at a time."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from eqi.errors import LockHeldError

__all__ = ["RunLock", "LOCK_NAME", "pid_alive"]

LOCK_NAME = ".eqi.lock"

log = logging.getLogger("eqi.lock")


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (signal 0; a process of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------------------------
# run lock


class RunLock:
    """Exclusive lock on an output root (``OUT/.eqi.lock``) so two runs cannot collide.

    Uses ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the lock file.  The kernel releases a flock when the
    file descriptor is closed, which includes the death of the holding process (even by SIGKILL),
    so a lock file left behind by a crashed run never blocks: only a live holder does.  A clean
    release records ``released`` in the file; a lock file without it names a run that ended
    without releasing (killed, crashed, host rebooted).  Taking such a stale lock over logs a
    warning naming the dead holder (pid, host, start) -- its unfinished tasks are recomputed,
    since only finished tasks have their done markers.  The file
    is therefore not deleted on release (deleting would let a waiter lock an unlinked inode while
    a third process creates and locks a new file); it keeps the last holder's pid/host/start time
    for diagnostics.  flock is not reliable on some network filesystems; keep OUT on local disk
    or make sure the NFS client supports it.

    Use as a context manager::

        with RunLock(out_root):
            ...
    """

    def __init__(self, out_root: str | os.PathLike[str]) -> None:
        self.out_root = Path(out_root)
        self.path = self.out_root / LOCK_NAME
        self._fd: int | None = None
        self.previous: dict[str, Any] | None = None  # the last holder's record, read on acquire

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`~eqi.errors.LockHeldError` naming the holder."""
        import fcntl

        if self._fd is not None:
            return self
        self.out_root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise LockHeldError(
                f"another eqi run holds the lock on {self.out_root} ({holder}); wait for it to "
                f"finish, or use a different output folder"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self.previous = _read_info(fd)
        _warn_if_stale(self.previous, self.path)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _now(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (idempotent)."""
        import fcntl

        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            with contextlib.suppress(OSError, ValueError):
                info = {**(_read_info(fd) or {}), "released": _now()}
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover - safety net
        with contextlib.suppress(Exception):
            self.release()


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _read_info(fd: int) -> dict[str, Any] | None:
    """The JSON record in the lock file, or None (empty, or not ours)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "null")
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _warn_if_stale(info: dict[str, Any] | None, path: Path) -> None:
    """Warn when the lock file names a holder that ended without releasing the lock."""
    if not info or "released" in info or "pid" not in info:
        return
    pid, host = info.get("pid"), info.get("host")
    who = f"pid {pid} on host {host}, started {info.get('started')}"
    if host == socket.gethostname():
        state = "is no longer running" if not pid_alive(int(pid)) else "no longer holds it (pid reused)"
        log.warning("taking over the stale lock %s: the run that held it (%s) %s; its unfinished "
                    "tasks are recomputed", path, who, state)  # fmt: skip
    else:
        log.warning("taking over the lock %s of a run on another host (%s), which did not release "
                    "it and no longer holds the flock; make sure that run has ended", path, who)  # fmt: skip


def _read_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        info = json.loads(raw)
        return f"pid {info.get('pid')} on host {info.get('host')}, started {info.get('started')}"
    except (OSError, ValueError, AttributeError):
        return "holder unknown"
