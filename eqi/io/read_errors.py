"""Which asset a failed read came from, whether the failure may pass, and the GDAL HTTP cache.

odc-stac raises the bare rasterio error (``HTTP response code: 404``, ``Chunk and warp failed``),
which names no file; odc-loader logs ``Failed to load <href>:<band>`` just before.  A process-wide
collector (:func:`watch_read_failures`) keeps the last of these records, so a failed tile can name
the item and asset it could not read (:func:`failed_assets`); eqi's own windowed reads record
theirs with :func:`note_failure`; :func:`probe_asset` opens an asset
and reads its last block when no record names one (a truncated file fails there).
"""

from __future__ import annotations

import collections
import ctypes
import logging
import re
import threading
from collections.abc import Iterable, Mapping

import rasterio
from rasterio.errors import RasterioError

__all__ = ["watch_read_failures", "note_failure", "failed_assets", "probe_asset", "is_transient", "clear_http_cache"]

_ODC_LOGGER = "odc.loader._rio"
_RECORDS: collections.deque[tuple[str, str]] = collections.deque(maxlen=2000)  # (href, message)
_LOCK = threading.Lock()
_INSTALLED: list[logging.Handler] = []
# HTTP answers that will not change on a retry (429 and 408 do)
_PERMANENT_HTTP = re.compile(r"HTTP (?:response )?code:? ?(40[0-7]|409|41\d|4[2-9][0-8]|410)\b")


class _Collector(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.args and isinstance(record.args, tuple) and isinstance(record.args[0], str):
            message = str(record.args[2]) if len(record.args) > 2 else record.getMessage()
            with _LOCK:
                _RECORDS.append((record.args[0], message))


def watch_read_failures() -> None:
    """Collect odc-loader's read-failure records in this process (idempotent).

    The records stop there: odc-loader's own log lines are not printed (eqi reports the failure
    once, naming item and asset).
    """
    with _LOCK:
        if _INSTALLED:
            return
        logger = logging.getLogger(_ODC_LOGGER)
        handler = _Collector(level=logging.ERROR)
        logger.addHandler(handler)
        logger.setLevel(logging.ERROR)
        logger.propagate = False
        _INSTALLED.append(handler)


def note_failure(href: str, message: str) -> None:
    """Record a failed read of ``href`` (eqi's own readers; odc-loader's are collected)."""
    with _LOCK:
        _RECORDS.append((href, message))


def _bare(href: str) -> str:
    return href.removeprefix("/vsicurl/").split("?", 1)[0]


def failed_assets(assets: Mapping[str, tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(item id, asset key, message) of the collected failures among ``assets``
    (``href -> (item id, asset key)``), oldest first, each asset once."""
    by_href = {_bare(h): v for h, v in assets.items()}
    with _LOCK:
        records = list(_RECORDS)
    found: dict[tuple[str, str], str] = {}
    for href, message in records:
        hit = by_href.get(_bare(href))
        if hit is not None:
            found[hit] = message
    return [(i, a, m) for (i, a), m in found.items()]


def forget(hrefs: Iterable[str]) -> None:
    """Drop the collected records of ``hrefs`` (before a retry, so only new failures count)."""
    bare = {_bare(h) for h in hrefs}
    with _LOCK:
        kept = [r for r in _RECORDS if _bare(r[0]) not in bare]
        _RECORDS.clear()
        _RECORDS.extend(kept)


def probe_asset(href: str) -> str | None:
    """Open ``href`` and read its last block: None when that works, else the error message."""
    try:
        with rasterio.open(href) as src:
            rows, cols = src.block_shapes[0]
            window = rasterio.windows.Window(
                (src.width - 1) // cols * cols, (src.height - 1) // rows * rows,
                min(cols, src.width), min(rows, src.height),
            ).intersection(rasterio.windows.Window(0, 0, src.width, src.height))
            src.read(1, window=window)
    except (RasterioError, OSError) as exc:
        return str(exc) or type(exc).__name__
    return None


def is_transient(message: str, hrefs: Iterable[str]) -> bool:
    """Whether a read failure may pass on a retry: a remote read that was not refused for good
    (an HTTP 4xx other than 408/429); local files are what they are."""
    remote = [h for h in hrefs if "://" in h]
    if not remote:
        return False
    return _PERMANENT_HTTP.search(message) is None


def clear_http_cache() -> None:
    """Forget what GDAL's ``/vsicurl/`` cached (file sizes, missing files, blocks) in this process,
    so a retry asks the server again.  A no-op when the GDAL library cannot be found."""
    path = _gdal_library()
    if path is None:
        return
    try:
        ctypes.CDLL(path).VSICurlClearCache()
    except (OSError, AttributeError):
        pass


def _gdal_library() -> str | None:
    """Path of the GDAL library rasterio uses, from this process's mapped libraries (Linux).

    Wheels bundle their own copies (rasterio.libs, pyogrio.libs): rasterio's is the one that reads
    the scenes; a system GDAL shared by all is the only one otherwise.
    """
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            found = list(dict.fromkeys(line.rsplit(" ", 1)[-1].strip() for line in maps if "/libgdal" in line))
    except OSError:
        return None
    ours = [p for p in found if "rasterio" in p] or [p for p in found if "pyogrio" not in p and "fiona" not in p]
    return ours[0] if ours else None
