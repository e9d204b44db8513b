"""Scene catalogs behind one interface: remote STAC APIs and local stac-geoparquet archives.

``open_catalog(source)`` returns a :class:`Catalog` whose ``search(bbox=, datetime=, collections=)``
gives pystac Items sorted by datetime then id.  ``index_archive`` builds an archive from delivered
Landsat C2 L2 / Sentinel-2 L2A folders.  Heavy modules are imported on first use.
"""

from __future__ import annotations

from typing import Any

from eqi.sources.base import Catalog, load_items, open_catalog, save_items, sort_items

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


def __getattr__(name: str) -> Any:
    if name in {"index_archive", "ArchiveCatalog", "IndexReport"}:
        from eqi.sources import archive

        return getattr(archive, name)
    if name == "StacApiCatalog":
        from eqi.sources.stac_api import StacApiCatalog

        return StacApiCatalog
    raise AttributeError(f"module 'eqi.sources' has no attribute {name!r}")
