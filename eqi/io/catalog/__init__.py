"""Scene catalogs behind one interface: remote STAC APIs, local stac-geoparquet archives, Sentinel Hub.

``open_catalog(source)`` returns a :class:`Catalog` whose ``search(bbox=, datetime=, collections=)``
gives pystac Items sorted by datetime then id.  ``index_archive`` builds an archive from delivered
Landsat C2 L2 / Sentinel-2 L2A folders.  A Sentinel Hub source (``sentinelhub://...``) has no files
to read: its catalog also has ``materialize(items, geobox, bands)``, which turns found items into
items with local band files on a tile's grid (:func:`needs_materialize` tells the two apart).
``resolve_collections(source, requested)`` gives the collections a run searches: those asked for,
or every scene collection an archive (or Sentinel Hub) offers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eqi.errors import ConfigError
from eqi.io.catalog.archive import ArchiveCatalog, IndexReport, index_archive
from eqi.io.catalog.base import Catalog, load_items, save_items, sort_items
from eqi.io.catalog.sentinelhub import SentinelHubCatalog, is_sentinelhub_source
from eqi.io.catalog.sentinelhub.items import EQI_COLLECTIONS as SENTINELHUB_COLLECTIONS
from eqi.sensors import KNOWN_COLLECTIONS, check_collections

__all__ = [
    "Catalog",
    "open_catalog",
    "resolve_collections",
    "save_items",
    "load_items",
    "sort_items",
    "index_archive",
    "ArchiveCatalog",
    "IndexReport",
    "StacApiCatalog",
    "SentinelHubCatalog",
    "needs_materialize",
    "is_sentinelhub_source",
]


def __getattr__(name: str) -> Any:
    """``StacApiCatalog`` on first use: pystac-client (with requests and jsonschema, about 7 MiB
    and 60 ms) is imported only by runs that search a STAC API."""
    if name == "StacApiCatalog":
        return _stac_api_catalog()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _stac_api_catalog() -> type:
    from eqi.io.catalog.stac_api import StacApiCatalog

    return StacApiCatalog


def needs_materialize(catalog: object) -> bool:
    """Whether a catalog's items must go through ``catalog.materialize(items, geobox, bands)``
    before they can be loaded (Sentinel Hub), rather than being read from their asset hrefs."""
    return callable(getattr(catalog, "materialize", None))


def open_catalog(source: str | Path, **options: Any) -> Catalog:
    """Open a catalog: an http(s) URL -> STAC API; a ``.parquet`` file -> local archive;
    ``sentinelhub://DEPLOYMENT`` (or ``sentinelhub+http://127.0.0.1:PORT``) -> Sentinel Hub.

    ``options`` configure a STAC API (``retries``, ``backoff_factor``, ``timeout``, ``headers``,
    ``modifier``...; see :class:`~eqi.io.catalog.stac_api.StacApiCatalog`) or Sentinel Hub
    (``cache_dir``, ``credentials_file``, ``timeout``...; see
    :class:`~eqi.io.catalog.sentinelhub.SentinelHubCatalog`); an archive ignores them.
    """
    text = str(source)
    if is_sentinelhub_source(text):
        return SentinelHubCatalog(text, **options)
    if text.startswith(("http://", "https://")):
        return _stac_api_catalog()(text, **options)
    path = Path(source).expanduser()
    if path.suffix.lower() in {".parquet", ".geoparquet"}:
        return ArchiveCatalog(path)
    raise ConfigError(
        f"source '{text}' is neither a STAC API URL (http:// or https://), a Sentinel Hub "
        "deployment (sentinelhub://cdse, sentinelhub://sentinel-hub) nor a stac-geoparquet "
        "archive (.parquet); build an archive with: eqi archive index DIR... --out FILE.parquet"
    )


def resolve_collections(
    catalog: Catalog | str | Path, requested: Sequence[str] | None
) -> list[str]:
    """The collections a run searches: ``requested`` if given, else all the source offers.

    ``catalog`` is an opened catalog or a source (URL / ``.parquet`` path / ``sentinelhub://``; a
    remote source is not contacted).  Without ``requested``, a local archive gives every scene
    collection it holds (e.g. ``['landsat-c2-l2', 'sentinel-2-l2a']``; other collections such as
    land-cover maps are left out), a Sentinel Hub source the collections eqi reads from it; a STAC
    API serves too many collections to take them all, so :class:`ConfigError` asks for
    ``--collections``.  Requested ids are checked (:class:`~eqi.errors.BandError` for an
    unknown one) and returned in the given order.
    """
    if requested:
        return check_collections(requested)
    if isinstance(catalog, SentinelHubCatalog) or (
        isinstance(catalog, str) and is_sentinelhub_source(catalog)
    ):
        return list(SENTINELHUB_COLLECTIONS)
    if isinstance(catalog, str | Path):
        text = str(catalog)
        if text.startswith(("http://", "https://")):
            catalog = _stac_api_catalog()(text)  # no request is made here
        else:
            catalog = open_catalog(catalog)
    listing = getattr(catalog, "collections", None)
    if not callable(listing):
        where = getattr(catalog, "url", None) or repr(catalog)
        raise ConfigError(
            f"source {where} is a STAC API serving many collections; say which to search with "
            "--collections (config 'collections:'), e.g. --collections landsat-c2-l2,sentinel-2-l2a"
        )
    held = list(listing())
    scenes = [c for c in held if c in KNOWN_COLLECTIONS]
    if not scenes:
        raise ConfigError(
            f"source {getattr(catalog, 'path', catalog)} holds no scene collection eqi reads "
            f"(it holds: {', '.join(held) or 'nothing'}); eqi reads "
            f"{', '.join(sorted(KNOWN_COLLECTIONS))}"
        )
    return scenes
