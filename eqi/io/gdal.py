"""GDAL settings for reading scenes: applied in this process and on every Dask worker."""

from __future__ import annotations

from typing import Any

import odc.stac

__all__ = ["GDAL_OPTIONS", "apply_gdal_options"]

# GDAL settings applied in this process and on every Dask worker (configure_gdal).
GDAL_OPTIONS: dict[str, Any] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no directory listing per file open
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_CACHEMAX": 64,  # MiB per process: a capped block cache
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.jp2",
    "VSI_CACHE": "TRUE",
}


def apply_gdal_options() -> None:
    """Apply :data:`GDAL_OPTIONS` in this process (run on every worker by :func:`configure_gdal`)."""
    odc.stac.configure_rio(cloud_defaults=False, **GDAL_OPTIONS)
