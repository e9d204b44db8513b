"""Bands already on the output grid: windowed reads of local files, without a warp per chunk.

When a band of every item of a load can be pasted onto the output grid as it is (the rule
odc-loader uses, odc-geo's ``compute_reproject_roi``: same CRS and pixel size, corners aligned:
Landsat C2 L2 in its own UTM zone at 30 m, Sentinel-2's 10 m bands at 10 m, the files Sentinel
Hub delivers on the tile grid), each Dask chunk is a plain windowed read of the files of its time
slice.  odc-loader takes the same read for such sources (its "paste" case of ``rio_read``), but
sets up a reader, a GDAL environment and a reprojection plan per chunk.  The reading threads share
the files they opened for the next blocks and tiles (:func:`release_handles` closes them), since opening
a GeoTIFF costs about a third of reading a 512 px window of it, with the GIL held.  Figures:
``docs/architecture.md``, "Reads on the native grid".

The pixels are the ones odc-stac would load: the time slices, their items and order come from
odc-stac's own load plan (``odc.stac.load(..., debug=True)``), a slice starts filled with the
band's fill value, each item's source nodata becomes that fill value, and later items fill only
what earlier ones left empty (odc-loader's default fuser).  A file whose grid is not the one its
STAC metadata declares fails the read (a ``RasterioIOError`` naming the file), it is never
pasted at the wrong place.  Remote assets, grids odc-loader would warp and bands without a
declared grid are not handled here: :func:`native_sources` returns None and odc-stac loads them.
"""

from __future__ import annotations

import functools
import os
import resource
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import dask.array as da
import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from odc.geo.overlap import compute_reproject_roi
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.windows import Window

from eqi.io.read_errors import note_failure

__all__ = ["NativeSource", "native_source", "native_sources", "native_band", "release_handles"]

_TRANSFORM_TOL = 1e-6  # of a pixel: a file's transform this close to its declared one is that one
_MAX_HANDLES = 512  # idle open files kept at most, all threads together (least recently used closed first)


@dataclass(frozen=True)
class NativeSource:
    """One item's band pasted onto the output grid: its file and band index, the output rows and
    columns it covers, and the shift from output to file pixels (file row = output row + ``dy``).
    ``shape`` and ``transform`` are what the file must have (checked when it is opened)."""

    path: str
    band: int
    rows: slice
    cols: slice
    dy: int
    dx: int
    shape: tuple[int, int]
    transform: tuple[float, ...]

    @property
    def covers(self) -> bool:
        return self.rows.stop > self.rows.start and self.cols.stop > self.cols.start


def _local_path(uri: str) -> str | None:
    if uri.startswith("file://"):
        return unquote(urlparse(uri).path)
    if "://" in uri or uri.startswith("/vsi"):
        return None
    return uri


def native_source(source: Any, geobox: GeoBox) -> NativeSource | None:
    """``source`` (an odc-loader ``RasterSource``) as a :class:`NativeSource` on ``geobox``, or
    None when it is remote, has no declared grid, or odc-loader would not paste it as it is
    (odc-geo's ``compute_reproject_roi``: same CRS, same pixel size, corners aligned)."""
    path = _local_path(str(source.uri))
    grid = getattr(source, "geobox", None)
    if path is None or not isinstance(grid, GeoBox):
        return None
    plan = compute_reproject_roi(grid, geobox)
    if not plan.paste_ok or plan.read_shrink != 1:
        return None
    (src_rows, src_cols), (rows, cols) = plan.roi_src, plan.roi_dst
    return NativeSource(
        path, int(source.band), rows, cols, src_rows.start - rows.start, src_cols.start - cols.start,
        (int(grid.shape.y), int(grid.shape.x)), tuple(grid.affine)[:6],
    )  # fmt: skip


def _open(src: NativeSource) -> Any:
    """``src``'s file, its grid checked against the declared one."""
    ds = rasterio.open(src.path)
    if (ds.height, ds.width) != src.shape or not np.allclose(
        tuple(ds.transform)[:6], src.transform, rtol=0, atol=_TRANSFORM_TOL * abs(src.transform[0])
    ):
        ds.close()
        raise RasterioIOError(
            f"{src.path}: its grid ({ds.width} x {ds.height} px, {tuple(ds.transform)[:6]}) is not the one its "
            f"STAC metadata declares ({src.shape[1]} x {src.shape[0]} px, {src.transform}); re-index the "
            "delivery (eqi archive index)"
        )
    return ds


class _FilePool:
    """Open files shared by the reading threads: a handle is used by one thread at a time (taken,
    then given back), idle ones are kept for the next block and tile, least recently used closed
    first.  One pool for all threads, so the handles kept follow the files read (one per file and
    concurrent reader), not files x threads."""

    def __init__(self) -> None:
        self.idle: OrderedDict[tuple[Any, ...], list[Any]] = OrderedDict()
        self.n_idle = 0
        self.lock = threading.Lock()

    def take(self, key: tuple[Any, ...]) -> Any | None:
        with self.lock:
            handles = self.idle.get(key)
            if not handles:
                return None
            self.n_idle -= 1
            ds = handles.pop()
            if not handles:
                del self.idle[key]
            return ds

    def give(self, key: tuple[Any, ...], ds: Any, limit: int) -> None:
        closing = []
        with self.lock:
            self.idle.setdefault(key, []).append(ds)
            self.idle.move_to_end(key)
            self.n_idle += 1
            while self.n_idle > limit:
                old_key, handles = next(iter(self.idle.items()))
                closing.append(handles.pop(0))
                self.n_idle -= 1
                if not handles:
                    del self.idle[old_key]
        for old in closing:
            old.close()

    def close_all(self) -> int:
        with self.lock:
            every = [ds for handles in self.idle.values() for ds in handles]
            self.idle.clear()
            self.n_idle = 0
        for ds in every:
            ds.close()
        return len(every)


_POOL = _FilePool()


def _max_kept() -> int:
    """Idle files kept at most: ``_MAX_HANDLES``, less where the process's open-file limit
    (``ulimit -n``, often 1024) would not leave three quarters free."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return _MAX_HANDLES
    return max(4, min(_MAX_HANDLES, soft // 4))


def _file_key(src: NativeSource) -> tuple[Any, ...]:
    """``src``'s file as it is now (path, inode, size, modification time) and its declared grid."""
    try:
        stat = os.stat(src.path)
    except OSError as exc:
        raise RasterioIOError(f"{src.path}: {exc.strerror or exc}") from exc
    return (src.path, stat.st_ino, stat.st_size, stat.st_mtime_ns, src.shape, src.transform)


@contextmanager
def _dataset(src: NativeSource) -> Iterator[Any]:
    """``src``'s open file, for this thread while the block is read: a kept handle when the file
    is unchanged since it was opened (same inode, size and modification time), else a newly
    opened and checked one; kept afterwards (closed instead when the read failed).

    Opening a GeoTIFF costs about a third of reading a 512 px window of it, with the GIL held
    (rasterio), and a tile reads every file once per block; a handle is therefore kept for the
    next block and the next tile.  ``GDAL_CACHEMAX`` caps the block cache process-wide
    (:mod:`eqi.io.gdal`).
    """
    key = _file_key(src)
    ds = _POOL.take(key)
    if ds is None:
        ds = _open(src)
    try:
        yield ds
    except BaseException:
        ds.close()
        raise
    _POOL.give(key, ds, _max_kept())


def release_handles() -> int:
    """Close the kept files (call when no read is running); the number closed."""
    return _POOL.close_all()


def _paste(out: np.ndarray, src: NativeSource, y0: int, x0: int, fill: Any) -> None:
    """Read ``src``'s part of the chunk ``out`` (output pixels from ``y0``, ``x0``) and fill the
    still-empty pixels of ``out`` with it."""
    h, w = out.shape
    r0, r1 = max(y0, src.rows.start), min(y0 + h, src.rows.stop)
    c0, c1 = max(x0, src.cols.start), min(x0 + w, src.cols.stop)
    if r0 >= r1 or c0 >= c1:
        return
    try:
        with _dataset(src) as ds:
            window = Window(c0 + src.dx, r0 + src.dy, c1 - c0, r1 - r0)
            pix = ds.read(src.band, window=window, out_dtype=out.dtype)
            nodata = ds.nodatavals[src.band - 1]
    except RasterioError as exc:
        note_failure(src.path, str(exc))
        raise
    if nodata is not None and not (nodata == fill or (np.isnan(nodata) and np.isnan(fill))):
        pix[np.isnan(pix) if np.isnan(nodata) else pix == nodata] = fill
    dst = out[r0 - y0 : r1 - y0, c0 - x0 : c1 - x0]
    empty = np.isnan(dst) if isinstance(fill, float) and np.isnan(fill) else dst == fill
    np.copyto(dst, pix, where=empty)


def _read_block(
    slices: tuple[tuple[NativeSource, ...], ...], fill: Any, dtype: np.dtype, block_info: dict | None = None
) -> np.ndarray:
    """One (time, y, x) chunk: its time slices' sources pasted in order over ``fill``."""
    info = block_info[None]  # type: ignore[index]
    (t0, t1), (y0, y1), (x0, x1) = info["array-location"]
    out = np.full((t1 - t0, y1 - y0, x1 - x0), fill, dtype=dtype)
    for k, t in enumerate(range(t0, t1)):
        for src in slices[t]:
            _paste(out[k], src, y0, x0, fill)
    return out


def native_sources(
    like: da.Array, slices: Sequence[Sequence[Any]], geobox: GeoBox, *, fill: Any
) -> tuple[tuple[NativeSource, ...], ...] | None:
    """Each time slice's sources as :class:`NativeSource` on ``geobox`` (those covering it), or
    None when a source is not on ``geobox``'s grid or the band has no fill value.  ``like`` is
    odc-stac's lazy band; ``slices[t]`` are the odc-loader ``RasterSource`` of time slice ``t``,
    in odc-stac's fusing order."""
    if fill is None or len(slices) != like.shape[0]:
        return None
    native: list[tuple[NativeSource, ...]] = []
    for members in slices:
        found = [native_source(s, geobox) for s in members]
        if any(n is None for n in found):
            return None
        native.append(tuple(n for n in found if n is not None and n.covers))
    return tuple(native)


def native_band(
    like: da.Array,
    native: tuple[tuple[NativeSource, ...], ...],
    *,
    fill: Any,
    name: str,
    dates_per_chunk: int = 1,
) -> da.Array:
    """``like`` (odc-stac's lazy band: its spatial chunks and dtype) as independent windowed-read
    tasks of ``dates_per_chunk`` time slices each, from :func:`native_sources`; ``fill`` is the
    band's fill value (its nodata)."""
    dtype = np.dtype(like.dtype)
    nt, step = len(native), max(int(dates_per_chunk), 1)
    times = tuple(min(step, nt - t) for t in range(0, nt, step)) or like.chunks[0]
    # the sources ride in a partial: as a map_blocks argument, dask would walk every
    # NativeSource looking for collections (unpack_collections), ~5 ms per band of 16 dates
    read = functools.partial(_read_block, native, dtype.type(fill), dtype)
    return da.map_blocks(
        read, chunks=(times, *like.chunks[1:]), dtype=dtype, meta=np.empty((0, 0, 0), dtype=dtype),
        name=f"native-{name}-{step}-{like.name}",  # keys differ by step: chunks differ too
    )  # fmt: skip
