"""Freeing a finished unit of work's memory now, not when the collector or the allocator decide.

A tile's (or a region product's) arrays sit in reference cycles (xarray, dask): a full collection
frees them at once (the CLI freezes the imported libraries, so it walks only the run's own
objects: milliseconds).  glibc then keeps the freed memory of its arenas mapped, so the resident
size stays at the unit's peak and the next unit (the next tile's reads, a region's mosaic, the
QGIS project's OGR) stacks on top of it: ``malloc_trim`` gives it back to the system.
"""

from __future__ import annotations

import ctypes
import gc
from typing import Any

__all__ = ["release_memory"]

_MALLOC_TRIM: Any = None  # glibc's malloc_trim once looked up; False where there is none


def release_memory(*, collect: bool = True) -> None:
    """Collect the cycles of the finished work (``collect``: about 5 ms in a run, so not after
    every small step) and return the free C heap to the system (a no-op where the C library is
    not glibc; about 1 ms)."""
    global _MALLOC_TRIM
    if collect:
        gc.collect()
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # musl, macOS, Windows
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)
