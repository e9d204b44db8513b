"""GDAL settings for reading scenes: applied in this process and on every Dask worker."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import odc.stac
from rasterio.env import set_gdal_config

__all__ = ["BLOCK_CACHE_BYTES", "VRT_SOURCES_OPEN", "GDAL_OPTIONS", "HTTP_RETRY_OPTIONS", "gdal_options", "apply_gdal_options"]

# Asset reads over HTTP: GDAL retries these answers itself, waiting GDAL_HTTP_RETRY_DELAY seconds
# and longer after each attempt; connection resets and timeouts are retried too (GDAL >= 3.7).
HTTP_RETRY_OPTIONS: dict[str, str] = {
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_RETRY_CODES": "429,500,502,503,504",
    "GDAL_HTTP_TIMEOUT": "120",  # seconds per request
    "GDAL_HTTP_CONNECTTIMEOUT": "30",
}

# GDAL's raster block cache in BYTES: rasterio applies GDAL_CACHEMAX with GDALSetCacheMax64, which
# takes bytes (not the MiB of GDAL's environment variable; until Dec 2026 eqi passed 64, a 64-byte
# cache).  The reads re-use no cached block: a chunk reads every file of its stack before the next
# chunk needs a neighbouring block again.  Measured on the bench e2e RSEI job (16 dates, 2048²,
# 2 threads): a real 64 MiB cache peaked at 573 MiB against 431-448 MiB for 2 MiB or 64 bytes, 16 MiB
# at 471 MiB, all in the same wall time; the fit's re-reads of tile products fill it the most.
BLOCK_CACHE_BYTES = 2 * 2**20

# Source files a VRT (a region's mosaic over its tile COGs) keeps open at most (GDAL's default 100).
# Each open tile product holds its decode buffers (~2.6 MiB for a 512 px ZSTD float32 block), so the
# default let a region's mosaic grow with its tiles: +42 MiB for 16 tiles.  A 512 px block lies in
# one tile, so a few are enough (bench tiles_scaling, 16 tiles: peak 347 -> 303 MiB with 8, 300 with 4).
VRT_SOURCES_OPEN = 8

# GDAL settings applied in this process and on every Dask worker (configure_gdal).
GDAL_OPTIONS: dict[str, Any] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no directory listing per file open
    **HTTP_RETRY_OPTIONS,
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_CACHEMAX": BLOCK_CACHE_BYTES,  # bytes (rasterio), per process
    "GDAL_MAX_DATASET_POOL_SIZE": VRT_SOURCES_OPEN,
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.jp2",
    "VSI_CACHE": "TRUE",
}


_PROCESS_WIDE = ("GDAL_CACHEMAX", "GDAL_MAX_DATASET_POOL_SIZE")  # set outside odc-stac's environment too


def gdal_options(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """:data:`GDAL_OPTIONS`, where an environment variable of the same name (e.g.
    ``GDAL_HTTP_MAX_RETRY=10``) overrides the retry settings of :data:`HTTP_RETRY_OPTIONS`."""
    env = os.environ if environ is None else environ
    return {k: env.get(k, v) if k in HTTP_RETRY_OPTIONS else v for k, v in GDAL_OPTIONS.items()}


def apply_gdal_options(options: Mapping[str, Any] | None = None) -> None:
    """Apply ``options`` (default :func:`gdal_options`) in this process, for every read.

    odc-stac reads through its own rasterio environment (``configure_rio``); the HTTP retry
    settings also go to the process environment, which GDAL consults for reads opened outside it
    (rasterio.open of reference layers, tile products).
    """
    opts = dict(gdal_options() if options is None else options)
    odc.stac.configure_rio(cloud_defaults=False, **opts)
    for key in _PROCESS_WIDE:  # one block cache and one source pool per process: for every read
        if key in opts:
            set_gdal_config(key, opts[key])
    for key in HTTP_RETRY_OPTIONS:
        if key in opts:
            os.environ.setdefault(key, str(opts[key]))
