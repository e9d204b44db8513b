"""GeoTIFF writing for the demo archive (the only place in eqi.demo that writes rasters).

Every creation option is fixed and no timestamp is written, so the same arrays give byte-identical
files.  Files are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine

__all__ = ["SIMULATED_TAG", "write_landsat_tif", "write_cog", "run_parallel"]

SIMULATED_TAG = {
    "EQI_SIMULATED": "TRUE",
    "EQI_NOTE": "SIMULATED by the eqi offline demo - not real satellite data",
}


def _finish(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)


def run_parallel(jobs: list[Callable[[], None]], max_workers: int | None = None) -> None:
    """Run independent file writes on a few threads (GDAL compresses outside the GIL).

    Each job writes its own file, so the bytes do not depend on the number of threads.
    """
    workers = max_workers or min(4, os.cpu_count() or 1)
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            job()
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def write_landsat_tif(
    path: Path,
    array: np.ndarray,
    transform: Affine,
    crs: str,
    nodata: int | None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Write one uint16 band like a USGS Collection 2 delivery: a COG layout with 256-pixel tiles,
    DEFLATE, no overviews, PixelIsPoint georeferencing."""
    tmp = path.with_name(path.name + ".part")
    with rasterio.open(
        tmp,
        "w",
        driver="COG",
        width=array.shape[1],
        height=array.shape[0],
        count=1,
        dtype="uint16",
        crs=crs,
        transform=transform,
        nodata=nodata,
        blocksize=256,
        compress="deflate",
        predictor=2,
        level=1,
        overviews="none",
    ) as dst:
        dst.write(array.astype(np.uint16, copy=False), 1)
        dst.update_tags(AREA_OR_POINT="Point", **SIMULATED_TAG, **(tags or {}))
    _finish(tmp, path)


def write_cog(
    path: Path,
    array: np.ndarray,
    transform: Affine,
    crs: str,
    nodata: int | None,
    *,
    categorical: bool = False,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    colormap: Mapping[int, tuple[int, int, int, int]] | None = None,
) -> None:
    """Write one band as a Cloud-Optimized GeoTIFF (GDAL COG driver, DEFLATE, 512 blocks,
    overviews: NEAREST for categorical bands, AVERAGE otherwise)."""
    tmp = path.with_name(path.name + ".part")
    with rasterio.open(
        tmp,
        "w",
        driver="COG",
        width=array.shape[1],
        height=array.shape[0],
        count=1,
        dtype=array.dtype.name,
        crs=crs,
        transform=transform,
        nodata=nodata,
        blocksize=512,
        compress="deflate",
        predictor=2,
        level=1,
        overview_resampling="nearest" if categorical else "average",
    ) as dst:
        dst.write(array, 1)
        if description:
            dst.set_band_description(1, description)
        if colormap:
            dst.write_colormap(1, dict(colormap))
        dst.update_tags(**SIMULATED_TAG, **(tags or {}))
    _finish(tmp, path)
