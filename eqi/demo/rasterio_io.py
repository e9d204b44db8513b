"""GeoTIFF writing for the demo archive (the only place in eqi.demo that writes rasters).

Both writers go through eqi's one COG writer, :func:`eqi.io.cog.write_array_cog` (GDAL's COG
driver, atomic rename), with the options of a delivery: DEFLATE level 1, predictor 2.  Every
option is fixed and no timestamp is written, so the same arrays give byte-identical files.
Unlike the products (:func:`eqi.io.cog.write_cog`) they carry no statistics or attribute tables:
they imitate what USGS and ESA deliver.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from rasterio.transform import Affine

from eqi.io.cog import write_array_cog

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
    write_array_cog(
        path, array.astype(np.uint16, copy=False), transform=transform, crs=crs, nodata=nodata,
        blocksize=256, overviews=False, level=1, predictor=2,
        tags={"AREA_OR_POINT": "Point", **SIMULATED_TAG, **(tags or {})},
    )  # fmt: skip


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
    write_array_cog(
        path, array, transform=transform, crs=crs, nodata=nodata, blocksize=512,
        resampling="nearest" if categorical else "average", level=1, predictor=2,
        description=description, tags={**SIMULATED_TAG, **(tags or {})}, colormap=colormap,
    )  # fmt: skip
