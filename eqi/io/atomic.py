"""Atomic writes: every file goes to a temporary sibling and is renamed into place.

Temporary files and folders are named ``.<name>.eqi-tmp-<12 hex><suffix>`` so that
:func:`clean_stale_temps` can remove what a killed run left behind.  ``os.replace`` is atomic on
POSIX within one filesystem, so a reader sees the old file or the new one, never a mix.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eqi.io.redact import redact

__all__ = [
    "TEMP_MARKER",
    "json_default",
    "sha256_file",
    "temp_name",
    "atomic_path",
    "scratch_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "clean_stale_temps",
]

TEMP_MARKER = ".eqi-tmp-"
_TEMP_RE = re.compile(r"^\..+" + re.escape(TEMP_MARKER) + r"[0-9a-f]{12}(\.\w+)?$")


def json_default(obj: Any) -> Any:
    if isinstance(obj, Path | _dt.date | _dt.datetime):
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if hasattr(obj, "item") and callable(obj.item):  # NumPy scalars
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")



def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()



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
    """Write ``text`` to ``path`` atomically, secrets redacted (:func:`eqi.io.redact.redact`:
    signed-URL signatures, tokens, registered secrets); return ``path``."""
    return atomic_write_bytes(path, redact(text).encode(encoding))


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, indent: int = 2) -> Path:
    """Write ``data`` as UTF-8 JSON (non-ASCII kept, trailing newline) atomically; return ``path``."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, default=json_default) + "\n"
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


