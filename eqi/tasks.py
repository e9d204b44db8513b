"""Task model of a run: deterministic ids, output paths, done markers, atomic writes and the run lock.

A task is one region × year.  Its outputs live in ``OUT/<region>/<year>/``; every file is written to
a temporary name in the same folder and renamed into place (``os.replace`` is atomic on POSIX within
one filesystem), and the task's STAC ``item.json`` is written last: it is the "done" marker.  A rerun
skips a task whose item names the same task id and whose assets are all present with the recorded
size (:func:`is_done`).

Temporary files and folders are named ``.<name>.eqi-tmp-<12 hex>`` so that
:func:`clean_stale_temps` can remove what a killed run left behind.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from eqi.errors import ConfigError, LockHeldError

__all__ = [
    "TEMP_MARKER",
    "task_id",
    "params_hash",
    "TaskPaths",
    "check_done",
    "is_done",
    "sha256_file",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "scratch_dir",
    "temp_name",
    "RunLock",
    "clean_stale_temps",
]

TEMP_MARKER = ".eqi-tmp-"
_TEMP_RE = re.compile(r"^\..+" + re.escape(TEMP_MARKER) + r"[0-9a-f]{12}(\.\w+)?$")
_LOCK_NAME = ".eqi.lock"
_BAD_NAME_CHARS = re.compile(r"[/\\\x00-\x1f]")


# --------------------------------------------------------------------------------------------
# ids and paths


def _check_region(region: str) -> str:
    if not isinstance(region, str) or not region.strip() or region.startswith("."):
        raise ConfigError(f"region name {region!r} is empty or starts with '.'; give a plain name")
    if _BAD_NAME_CHARS.search(region) or region != region.strip():
        raise ConfigError(
            f"region name {region!r} contains a path separator, control character or surrounding "
            "spaces; region names become folder names, choose one without them"
        )
    return region


def params_hash(params: Mapping[str, Any], length: int = 10) -> str:
    """Short sha256 hex digest of the canonical JSON of ``params``.

    Canonical JSON: keys sorted, no whitespace, UTF-8; values must be JSON-serialisable (paths and
    dates are converted with ``str``).  Key order and Python's hash seed do not change the result.
    """
    try:
        text = json.dumps(
            params, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"task parameters cannot be serialised to JSON: {exc}") from exc
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path | _dt.date | _dt.datetime):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if hasattr(obj, "item") and callable(obj.item):  # NumPy scalars
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def task_id(region: str, year: int, params: Mapping[str, Any]) -> str:
    """Deterministic id ``<region>_<year>_<hash>`` of one region × year task.

    ``hash`` is the first 10 hex digits of the sha256 of the canonical JSON of ``params`` (method
    profile, products, grid, sources …), so a changed parameter gives a new id and forces a rerun.
    """
    _check_region(region)
    return f"{region}_{int(year)}_{params_hash(params)}"


class TaskPaths:
    """Output paths of one task: ``OUT/<region>/<year>/``.

    Parameters
    ----------
    out_root
        Output root folder ``OUT``.
    region
        Region name (folder name; no path separators).
    year
        Year of the task.
    """

    def __init__(self, out_root: str | os.PathLike[str], region: str, year: int) -> None:
        self.out_root = Path(out_root)
        self.region = _check_region(region)
        self.year = int(year)

    def __repr__(self) -> str:
        return f"TaskPaths({str(self.out_root)!r}, {self.region!r}, {self.year})"

    @property
    def dir(self) -> Path:
        """Folder of the task's outputs."""
        return self.out_root / self.region / str(self.year)

    @property
    def item(self) -> Path:
        """The task's STAC item, written last (the done marker)."""
        return self.dir / "item.json"

    def product(self, name: str) -> Path:
        """Path of product ``name`` as a GeoTIFF, e.g. ``OUT/<region>/<year>/ndvi.tif``."""
        if not name or _BAD_NAME_CHARS.search(name) or name.startswith("."):
            raise ConfigError(f"product name {name!r} cannot be used as a file name")
        return self.dir / f"{name}.tif"


# --------------------------------------------------------------------------------------------
# done markers


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def check_done(paths: TaskPaths, task_id: str, *, verify_checksum: bool = False) -> str | None:
    """Why task ``task_id`` is not done, or ``None`` when it is.

    Done means: ``item.json`` exists and parses, its ``properties["eqi:task_id"]`` equals
    ``task_id``, and every asset it lists exists with the recorded ``file:size`` (bytes).  With
    ``verify_checksum`` the ``file:checksum`` (sha256 multihash, ``1220`` + hex) is verified too;
    an asset without a recorded size is treated as unverifiable (not done).
    """
    item_path = paths.item
    if not item_path.is_file():
        return f"{item_path} does not exist"
    try:
        item = json.loads(item_path.read_text(encoding="utf-8"))
        recorded = item["properties"].get("eqi:task_id")
        assets = item.get("assets", {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"{item_path} is unreadable ({exc})"
    if recorded != task_id:
        return f"{item_path} belongs to task {recorded!r}, not {task_id!r}"
    for key, asset in assets.items():
        href = asset.get("href", "")
        if "://" in href:
            return f"asset {key!r} has a non-local href {href!r}"
        asset_path = (item_path.parent / href).resolve()
        if not asset_path.is_file():
            return f"asset {key!r} is missing: {asset_path}"
        size = asset.get("file:size")
        if size is None:
            return f"asset {key!r} records no file:size"
        actual = asset_path.stat().st_size
        if actual != size:
            return f"asset {key!r} has {actual} bytes, item records {size}: {asset_path}"
        if verify_checksum:
            checksum = asset.get("file:checksum")
            if checksum is None:
                return f"asset {key!r} records no file:checksum"
            if checksum != "1220" + sha256_file(asset_path):
                return f"asset {key!r} does not match its recorded sha256: {asset_path}"
    return None


def is_done(paths: TaskPaths, task_id: str, *, verify_checksum: bool = False) -> bool:
    """True when the task's item names ``task_id`` and all its assets exist with the recorded size.

    Sizes are always checked (cheap; catches missing and truncated files); sha256 checksums only
    when ``verify_checksum`` is set.  See :func:`check_done` for the reason when False.
    """
    return check_done(paths, task_id, verify_checksum=verify_checksum) is None


# --------------------------------------------------------------------------------------------
# atomic writes


def temp_name(path: str | os.PathLike[str]) -> Path:
    """A fresh temporary sibling of ``path``: ``<dir>/.<name>.eqi-tmp-<12 hex><suffix>``.

    Not created.  The file's own suffix is kept at the end, so writers that choose a format or a
    layer name from the suffix (GDAL, ``np.save``) treat the temporary file like the target.
    """
    path = Path(path)
    return path.with_name(f".{path.name}{TEMP_MARKER}{secrets.token_hex(6)}{path.suffix}")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    The temporary path does not exist yet: the block creates it (any writer that takes a path).
    On an exception it is removed and an existing file at ``path`` is left untouched.  The parent
    folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"atomic write to {path}: nothing was written to {tmp}")
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def scratch_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Create a temporary folder beside ``path`` (``.<name>.eqi-tmp-<hex>``), remove it on exit.

    For writers that need several intermediate files; move the finished file out of it with
    ``os.replace`` (same filesystem, so the rename is atomic).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(path)
    tmp.mkdir()
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename); return ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; return ``path``."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, indent: int = 2) -> Path:
    """Write ``data`` as UTF-8 JSON (non-ASCII kept, trailing newline) atomically; return ``path``."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, default=_json_default) + "\n"
    return atomic_write_text(path, text)


def clean_stale_temps(directory: str | os.PathLike[str], *, recursive: bool = True) -> list[Path]:
    """Remove temporary files and folders (``.<name>.eqi-tmp-<hex>``) left by killed runs.

    Call it only while holding the :class:`RunLock` of the output root, otherwise the temporary
    files of a running job would be removed.  Returns the removed paths.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    candidates = (
        directory.rglob(f"*{TEMP_MARKER}*") if recursive else directory.glob(f"*{TEMP_MARKER}*")
    )
    removed: list[Path] = []
    # Sorted so that a temp folder is removed before anything found inside it.
    for path in sorted(candidates):
        if _TEMP_RE.match(path.name) and (path.exists() or path.is_symlink()):
            if any(p in removed for p in path.parents):
                continue
            _remove(path)
            removed.append(path)
    return removed


# --------------------------------------------------------------------------------------------
# run lock


class RunLock:
    """Exclusive lock on an output root (``OUT/.eqi.lock``) so two runs cannot collide.

    Uses ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the lock file.  The kernel releases a flock when the
    file descriptor is closed, which includes the death of the holding process (even by SIGKILL),
    so a lock file left behind by a crashed run never blocks: only a live holder does.  The file
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
        self.path = self.out_root / _LOCK_NAME
        self._fd: int | None = None

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
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
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


def _read_holder(fd: int) -> str:
    try:
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        info = json.loads(raw)
        return f"pid {info.get('pid')} on host {info.get('host')}, started {info.get('started')}"
    except (OSError, ValueError, AttributeError):
        return "holder unknown"
