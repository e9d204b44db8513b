"""Sentinel Hub (Process API + Catalog API) as an eqi scene source; see docs/sentinelhub.md.

``open_catalog("sentinelhub://cdse")`` returns a :class:`SentinelHubCatalog`: ``search()`` finds
Sentinel-2 L2A acquisitions with the Catalog API, ``materialize(items, geobox, bands)`` fetches
their pixels on a tile's grid with the Process API (cached per request) and returns items whose
assets are local GeoTIFFs, ready for :func:`eqi.io.load.group_items` / :func:`load_group`.
"""

from __future__ import annotations

from eqi.io.catalog.sentinelhub.catalog import ENV_CACHE, SentinelHubCatalog, default_cache_dir
from eqi.io.catalog.sentinelhub.credentials import Credentials, find_credentials
from eqi.io.catalog.sentinelhub.source import SourceSpec, is_sentinelhub_source, parse_source

__all__ = [
    "SentinelHubCatalog",
    "Credentials",
    "find_credentials",
    "SourceSpec",
    "parse_source",
    "is_sentinelhub_source",
    "default_cache_dir",
    "ENV_CACHE",
]
