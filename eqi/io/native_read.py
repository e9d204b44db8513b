"""Bands already on the output grid: windowed reads of local files, without a warp per chunk.

When a band of every item of a load lies on the output grid (same CRS and pixel size, pixel
corners aligned: Landsat C2 L2 in its own UTM zone at 30 m, Sentinel-2's 10 m bands at 10 m, the
files Sentinel Hub delivers on the tile grid), each Dask chunk is a plain windowed read of the
files of its time slice.  odc-loader takes the same read for such sources (its "paste" case of
``rio_read``), but sets up a reader, a GDAL environment and a reprojection plan per chunk: for a
1024 x 1024 px tile of 16 dates and 3 bands that costs 1.8 s of CPU against 0.5 s here (measured,
``docs/architecture.md`` "Reads on the native grid").

The pixels are the ones odc-stac would load: the time slices, their items and order come from
odc-stac's own load plan (``odc.stac.load(..., debug=True)``), a slice starts filled with the
band's fill value, each item's source nodata becomes that fill value, and later items fill only
what earlier ones left empty (odc-loader's default fuser).  A file whose grid is not the one its
STAC metadata declares fails the read (a ``RasterioIOError`` naming the file), it is never
pasted at the wrong place.  Remote assets, rotated or misaligned grids and bands without a
declared grid are not handled here: :func:`native_band` returns None and odc-stac loads them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

import dask.array as da
import numpy as np
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.windows import Window

from eqi.io.read_errors import note_failure

__all__ = ["NativeSource", "native_source", "native_band"]

_ALIGN_TOL = 1e-6  # of a pixel: corners this close count as aligned


@dataclass(frozen=True)
class NativeSource:
    """One item's band on the output grid: its file, band index, and where its pixel (0, 0) lies
    in output pixels (``row``, ``col``, may be negative); ``shape`` and ``transform`` are what the
    file must have (checked when it is opened)."""

    path: str
    band: int
    row: int
    col: int
    shape: tuple[int, int]
    transform: tuple[float, ...]


def _local_path(uri: str) -> str | None:
    if uri.startswith("file://"):
        return unquote(urlparse(uri).path)
    if "://" in uri or uri.startswith("/vsi"):
        return None
    return uri


def _offset_px(value: float) -> int | None:
    """``value`` (in pixels) as an integer, or None when it is not within the tolerance of one."""
    k = round(value)
    return int(k) if abs(value - k) <= _ALIGN_TOL else None


def native_source(source: Any, geobox: GeoBox) -> NativeSource | None:
    """``source`` (an odc-loader ``RasterSource``) as a :class:`NativeSource` on ``geobox``, or
    None when it is remote, has no declared grid, or its grid is not aligned with ``geobox``."""
    path = _local_path(str(source.uri))
    grid = getattr(source, "geobox", None)
    if path is None or not isinstance(grid, GeoBox) or grid.crs is None or geobox.crs is None:
        return None
    a, g = grid.affine, geobox.affine
    if a.b != 0 or a.d != 0 or g.b != 0 or g.d != 0:
        return None  # rotated grids are warped by odc-stac
    if not (math.isclose(a.a, g.a, rel_tol=1e-9) and math.isclose(a.e, g.e, rel_tol=1e-9)):
        return None
    col, row = _offset_px((a.c - g.c) / g.a), _offset_px((a.f - g.f) / g.e)
    if col is None or row is None or grid.crs != geobox.crs:
        return None
    return NativeSource(path, int(source.band), row, col, (int(grid.shape.y), int(grid.shape.x)), tuple(a)[:6])


def _open(src: NativeSource) -> Any:
    """``src``'s file, its grid checked against the declared one."""
    ds = rasterio.open(src.path)
    if (ds.height, ds.width) != src.shape or not np.allclose(
        tuple(ds.transform)[:6], src.transform, rtol=0, atol=_ALIGN_TOL * abs(src.transform[0])
    ):
        ds.close()
        raise RasterioIOError(
            f"{src.path}: its grid ({ds.width} x {ds.height} px, {tuple(ds.transform)[:6]}) is not the one its "
            f"STAC metadata declares ({src.shape[1]} x {src.shape[0]} px, {src.transform}); re-index the "
            "delivery (eqi archive index)"
        )
    return ds


def _paste(out: np.ndarray, src: NativeSource, y0: int, x0: int, fill: Any) -> None:
    """Read ``src``'s part of the chunk ``out`` (output pixels from ``y0``, ``x0``) and fill the
    still-empty pixels of ``out`` with it."""
    h, w = out.shape
    r0, r1 = max(y0 - src.row, 0), min(y0 + h - src.row, src.shape[0])
    c0, c1 = max(x0 - src.col, 0), min(x0 + w - src.col, src.shape[1])
    if r0 >= r1 or c0 >= c1:
        return
    try:
        with _open(src) as ds:
            pix = ds.read(src.band, window=Window(c0, r0, c1 - c0, r1 - r0), out_dtype=out.dtype)
            nodata = ds.nodatavals[src.band - 1]
    except RasterioError as exc:
        note_failure(src.path, str(exc))
        raise
    if nodata is not None and not (nodata == fill or (np.isnan(nodata) and np.isnan(fill))):
        pix[np.isnan(pix) if np.isnan(nodata) else pix == nodata] = fill
    dst = out[r0 + src.row - y0 : r1 + src.row - y0, c0 + src.col - x0 : c1 + src.col - x0]
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


def native_band(
    like: da.Array, slices: Sequence[Sequence[Any]], geobox: GeoBox, *, fill: Any, name: str
) -> da.Array | None:
    """``like`` (odc-stac's lazy band: its chunks and dtype) as independent windowed-read tasks,
    or None when a source is not on ``geobox``'s grid.  ``slices[t]`` are the odc-loader
    ``RasterSource`` of time slice ``t``, in odc-stac's fusing order; ``fill`` is the band's fill
    value (its nodata)."""
    native: list[tuple[NativeSource, ...]] = []
    for members in slices:
        found = [native_source(s, geobox) for s in members]
        if any(n is None for n in found):
            return None
        native.append(tuple(n for n in found if n is not None))
    if len(native) != like.shape[0] or fill is None:
        return None
    dtype = np.dtype(like.dtype)
    return da.map_blocks(
        _read_block, tuple(native), dtype.type(fill), dtype, chunks=like.chunks, dtype=dtype,
        meta=np.empty((0, 0, 0), dtype=dtype), name=f"native-{name}-{like.name}",
    )  # fmt: skip
