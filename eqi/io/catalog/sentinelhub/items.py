"""Sentinel Hub Catalog features as eqi's pystac Items, and acquisitions (one Process API request).

A Catalog API feature of ``sentinel-2-l2a`` has the ESA product name as id
(``S2B_MSIL2A_20201229T101329_N0214_R022_T33TUK_20201229T115442``) and few properties
(``datetime``, ``platform``, ``eo:cloud_cover``, ``proj:epsg``, ``proj:bbox``, ``gsd``...).  The
item keeps them, adds ``s2:processing_baseline`` read from the ``_Nxxyy_`` part of the id (so
:func:`eqi.sensors.s2_boa_offset_dn` decides the BOA offset as for any L2A product), and drops the
Sentinel Hub assets (S3 paths readable only inside Sentinel Hub): pixels come from
:meth:`~eqi.io.catalog.sentinelhub.catalog.SentinelHubCatalog.materialize`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pystac
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension

from eqi.errors import SourceError
from eqi.io.catalog.base import item_interval, sort_items

__all__ = [
    "EQI_COLLECTIONS",
    "Acquisition",
    "feature_to_item",
    "acquisitions",
    "band_item",
]

# eqi collection id -> Sentinel Hub Catalog / Process API collection id
EQI_COLLECTIONS: dict[str, str] = {"sentinel-2-l2a": "sentinel-2-l2a"}
_BASELINE = re.compile(r"_N(\d{2})(\d{2})(?=_|$)")
_GEOTIFF = str(pystac.MediaType.GEOTIFF)


def _parse_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def feature_to_item(feature: dict[str, Any], collection: str) -> pystac.Item:
    """A pystac Item (collection ``collection``, eqi's id) for one Catalog API feature."""
    try:
        item_id = str(feature["id"])
        props = dict(feature.get("properties") or {})
        when = _parse_datetime(props.pop("datetime"))
    except (KeyError, TypeError, ValueError) as err:
        raise SourceError(
            f"Sentinel Hub Catalog answered a feature without id or datetime ({err})"
        ) from None
    match = _BASELINE.search(item_id)
    if match and "s2:processing_baseline" not in props:
        props["s2:processing_baseline"] = f"{match.group(1)}.{match.group(2)}"
    props["sentinelhub:collection"] = EQI_COLLECTIONS.get(collection, collection)
    item = pystac.Item(
        id=item_id,
        geometry=feature.get("geometry"),
        bbox=list(feature["bbox"]) if feature.get("bbox") else None,
        datetime=when,
        properties=props,
        collection=collection,
    )
    return item


def _solar_day(item: pystac.Item) -> date:
    """Local solar date (UTC + longitude / 15 h), as odc-stac's ``groupby='solar_day'``."""
    when = item_interval(item)[0]
    lon = 0.0
    if item.bbox:
        lon = (float(item.bbox[0]) + float(item.bbox[2])) / 2
    return (when + timedelta(hours=lon / 15.0)).date()


@dataclass(frozen=True)
class Acquisition:
    """Items of one solar day and processing baseline: one Process API mosaic."""

    items: tuple[pystac.Item, ...]

    @property
    def lead(self) -> pystac.Item:
        return self.items[0]

    @property
    def time_range(self) -> tuple[datetime, datetime]:
        """[first sensing time - 1 s, last + 1 s], whole seconds, UTC."""
        times = [item_interval(i)[0] for i in self.items]
        start = min(times).replace(microsecond=0) - timedelta(seconds=1)
        end = max(times).replace(microsecond=0) + timedelta(seconds=2)
        return start, end


def acquisitions(items: Iterable[pystac.Item]) -> list[Acquisition]:
    """Group items into acquisitions (same solar day and processing baseline), sorted."""
    groups: dict[tuple[date, str], list[pystac.Item]] = {}
    for item in sort_items(items):
        baseline = str(item.properties.get("s2:processing_baseline", ""))
        groups.setdefault((_solar_day(item), baseline), []).append(item)
    return [Acquisition(tuple(members)) for _, members in sorted(groups.items())]


def band_item(
    acquisition: Acquisition,
    files: Sequence[tuple[str, str, str]],
    *,
    crs_code: str,
    shape: tuple[int, int],
    transform: Sequence[float],
    extra_properties: dict[str, Any],
) -> pystac.Item:
    """The item of a materialised acquisition: one asset per band file.

    ``files`` are (asset key, absolute path, data type) rows; the key is an eqi alias (``red``,
    ``nir``, ...), ``scl`` or ``datamask``.  Every asset is on the request grid (``crs_code``,
    ``shape`` = rows, cols, ``transform`` = 6 affine coefficients), nodata 0.
    """
    lead = acquisition.lead
    props = {k: v for k, v in lead.properties.items() if k != "datetime"}
    if len(acquisition.items) > 1:
        props["sentinelhub:items"] = [i.id for i in acquisition.items]
    props.update(extra_properties)
    item = pystac.Item(
        id=lead.id,
        geometry=lead.geometry,
        bbox=lead.bbox,
        datetime=lead.datetime,
        properties=props,
        collection=lead.collection_id,
    )
    RasterExtension.add_to(item)
    ProjectionExtension.add_to(item)
    for key, path, dtype in files:
        roles = ["data"]
        if key == "scl":
            roles = ["data", "cloud-mask"]
        elif key == "datamask":
            roles = ["data-mask"]
        asset = pystac.Asset(href=path, media_type=_GEOTIFF, roles=roles, title=key)
        item.add_asset(key, asset)
        ProjectionExtension.ext(asset).apply(
            code=crs_code, shape=list(shape), transform=[float(v) for v in transform]
        )
        RasterExtension.ext(asset).apply(bands=[RasterBand.create(nodata=0, data_type=dtype)])
    return item
