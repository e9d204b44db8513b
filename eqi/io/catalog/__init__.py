"""Scene catalogs behind one interface: remote STAC APIs and local stac-geoparquet archives.

``open_catalog(source)`` returns a :class:`Catalog` whose ``search(bbox=, datetime=, collections=)``
gives pystac Items sorted by datetime then id.  ``index_archive`` builds an archive from delivered
Landsat C2 L2 / Sentinel-2 L2A folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eqi.errors import ConfigError
from eqi.io.catalog.archive import ArchiveCatalog, IndexReport, index_archive
from eqi.io.catalog.base import Catalog, load_items, save_items, sort_items
from eqi.io.catalog.stac_api import StacApiCatalog

__all__ = [
    "Catalog",
    "open_catalog",
    "save_items",
    "load_items",
    "sort_items",
    "index_archive",
    "ArchiveCatalog",
    "IndexReport",
    "StacApiCatalog",
]


def open_catalog(source: str | Path, **options: Any) -> Catalog:
    """Open a catalog: an http(s) URL -> STAC API; a ``.parquet`` file -> local archive.

    ``options`` configure a STAC API (``retries``, ``backoff_factor``, ``timeout``, ``headers``,
    ``modifier``...; see :class:`~eqi.io.catalog.stac_api.StacApiCatalog`); an archive ignores them.
    """
    text = str(source)
    if text.startswith(("http://", "https://")):
        return StacApiCatalog(text, **options)
    path = Path(source).expanduser()
    if path.suffix.lower() in {".parquet", ".geoparquet"}:
        return ArchiveCatalog(path)
    raise ConfigError(
        f"source '{text}' is neither a STAC API URL (http:// or https://) nor a stac-geoparquet "
        "archive (.parquet); build an archive with: eqi archive index DIR... --out FILE.parquet"
    )
