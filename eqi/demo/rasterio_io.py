"""GeoTIFF writing for the demo archive (the only place in eqi.demo that writes rasters).

Every creation option is fixed and no timestamp is written, so the same arrays give byte-identical
files.  Files are written to a temporary name and renamed into place (:func:`eqi.io.atomic.atomic_path`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine

from eqi.io.atomic import atomic_path

__all__ = ["SIMULATED_TAG", "write_landsat_tif", "write_demo_cog", "run_parallel"]

SIMULATED_TAG = {
    "EQI_SIMULATED": "TRUE",
    "EQI_NOTE": "SIMULATED by the eqi offline demo - not real satellite data",
}


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


def _write_band(
    path: Path,
    array: np.ndarray,
    transform: Affine,
    crs: str,
    nodata: int | None,
    *,
    blocksize: int,
    tags: Mapping[str, str],
    description: str | None = None,
    colormap: Mapping[int, tuple[int, int, int, int]] | None = None,
    **cog_options: str,
) -> None:
    """One band through GDAL's COG driver (DEFLATE, predictor 2), atomically (eqi.io.atomic)."""
    with atomic_path(path) as tmp, rasterio.open(
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
        blocksize=blocksize,
        compress="deflate",
        predictor=2,
        level=1,
        **cog_options,
    ) as dst:
        dst.write(array, 1)
        if description:
            dst.set_band_description(1, description)
        if colormap:
            dst.write_colormap(1, dict(colormap))
        dst.update_tags(**tags)


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
    _write_band(
        path, array.astype(np.uint16, copy=False), transform, crs, nodata, blocksize=256,
        tags={"AREA_OR_POINT": "Point", **SIMULATED_TAG, **(tags or {})}, overviews="none",
    )


def write_demo_cog(
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
    _write_band(
        path, array, transform, crs, nodata, blocksize=512,
        tags={**SIMULATED_TAG, **(tags or {})}, description=description, colormap=colormap,
        overview_resampling="nearest" if categorical else "average",
    )
