"""STAC metadata of finished outputs: one item per task (the done marker) and the run catalog.

``OUT/<region>/<year>/item.json`` describes a task's products with the projection, raster and file
extensions (grid, nodata, statistics, size and sha256 of every asset) and carries provenance
properties (``eqi:task_id``, input scene ids, method profile, config hash, ``eqi:simulated``).
It is written last and atomically, so its presence with matching assets means the task is done
(:func:`eqi.pipeline.tasks.is_done`).  ``OUT/catalog.json`` links every item present, by relative href.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Statistics

from eqi.io.atomic import atomic_write_json, sha256_file

__all__ = [
    "AssetInfo",
    "PROCESSING_SCHEMA",
    "eqi_version",
    "product_item",
    "write_item_atomic",
    "update_catalog",
]

PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
_RASTER_MEDIA = (pystac.MediaType.COG, pystac.MediaType.GEOTIFF)


@dataclass(frozen=True)
class AssetInfo:
    """One output file of a task.

    Parameters
    ----------
    path
        The file (absolute, or relative to the working directory); it must exist.
    title
        Human title, e.g. ``"NDVI, growing-season median"``.
    roles
        STAC roles, e.g. ``("data",)``, ``("style",)``, ``("metadata",)``.
    media_type
        IANA media type; GeoTIFF/COG assets also get projection and raster metadata read from
        the file.
    description
        Optional longer text.
    """

    path: Path
    title: str
    roles: tuple[str, ...] = ("data",)
    media_type: str = pystac.MediaType.COG
    description: str | None = None


def eqi_version() -> str:
    """Installed version of eqi ("unknown" when run from an uninstalled tree)."""
    try:
        return metadata.version("eqi")
    except metadata.PackageNotFoundError:
        return "unknown"


def _finite(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _raster_metadata(asset: pystac.Asset, path: Path) -> None:
    """Projection (code/WKT2, shape, transform) and raster band metadata read from a GeoTIFF."""
    with rasterio.open(path) as src:
        proj = ProjectionExtension.ext(asset, add_if_missing=True)
        epsg = src.crs.to_epsg() if src.crs else None
        if epsg is not None:
            proj.epsg = epsg
        elif src.crs is not None:
            proj.code = None
            proj.wkt2 = src.crs.to_wkt()
        proj.shape = [src.height, src.width]
        proj.transform = list(src.transform)[:6]
        tags = src.tags(1)
        stats = None
        if "STATISTICS_MINIMUM" in tags:
            stats = Statistics.create(
                minimum=float(tags["STATISTICS_MINIMUM"]),
                maximum=float(tags["STATISTICS_MAXIMUM"]),
                mean=float(tags["STATISTICS_MEAN"]),
                stddev=float(tags["STATISTICS_STDDEV"]),
                valid_percent=(
                    float(tags["STATISTICS_VALID_PERCENT"])
                    if "STATISTICS_VALID_PERCENT" in tags
                    else None
                ),
            )
        nodata = src.nodata
        band = RasterBand.create(
            nodata="nan" if nodata is not None and np.isnan(nodata) else nodata,
            data_type=DataType(src.dtypes[0]),
            spatial_resolution=float(abs(src.transform.a)),
            statistics=stats,
            unit=tags.get("UNITS"),
            scale=None if src.scales[0] == 1.0 else float(src.scales[0]),
            offset=None if src.offsets[0] == 0.0 else float(src.offsets[0]),
        )
        RasterExtension.ext(asset, add_if_missing=True).bands = [band]


def _year_range(year: int) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime(int(year), 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(int(year), 12, 31, 23, 59, 59, tzinfo=dt.UTC)
    return start, end


def product_item(
    task_id: str,
    region_name: str,
    year: int,
    geometry_wgs84: Mapping[str, Any] | Any,
    bbox: Sequence[float],
    assets: Mapping[str, AssetInfo],
    properties: Mapping[str, Any] | None = None,
    *,
    scene_ids: Sequence[str] | None = None,
    method: Mapping[str, Any] | None = None,
    config_hash: str | None = None,
    simulated: bool | None = None,
    checksums: bool = True,
) -> pystac.Item:
    """STAC item describing the finished outputs of one task.

    Parameters
    ----------
    task_id
        Deterministic task id (:func:`eqi.pipeline.tasks.task_id`); the item id and ``eqi:task_id``.
    region_name, year
        Stored as ``eqi:region`` / ``eqi:year``; the time range is the calendar year unless
        ``properties`` give ``start_datetime`` / ``end_datetime`` (ISO 8601 strings).
    geometry_wgs84
        Region footprint in EPSG:4326, as GeoJSON mapping or a shapely geometry.
    bbox
        ``[west, south, east, north]`` in degrees.
    assets
        ``{key: AssetInfo}``; every file must exist.  Each asset records ``file:size`` and (with
        ``checksums``) ``file:checksum`` (sha256 multihash); GeoTIFFs also get ``proj:*`` and
        ``raster:bands`` (nodata, dtype, unit, scale/offset, statistics) read from the file.
    properties
        Extra item properties (e.g. ``eqi:products``), merged last.
    scene_ids, method, config_hash, simulated
        Provenance: input scene ids (``eqi:scene_ids``), method profile and parameters
        (``eqi:method``), hash of the run config (``eqi:config_hash``), and ``eqi:simulated``
        when the inputs were simulated.  Omitted when None.
    """
    if hasattr(geometry_wgs84, "__geo_interface__"):
        geometry = dict(geometry_wgs84.__geo_interface__)
    else:
        geometry = dict(geometry_wgs84)
    geometry = json.loads(json.dumps(geometry))  # tuples → lists, plain JSON types
    start, end = _year_range(year)
    props: dict[str, Any] = {
        "eqi:task_id": task_id,
        "eqi:region": region_name,
        "eqi:year": int(year),
        "processing:software": {"eqi": eqi_version()},
    }
    if scene_ids is not None:
        props["eqi:scene_ids"] = sorted(str(s) for s in scene_ids)
    if method is not None:
        props["eqi:method"] = json.loads(json.dumps(dict(method), default=str))
    if config_hash is not None:
        props["eqi:config_hash"] = config_hash
    if simulated is not None:
        props["eqi:simulated"] = bool(simulated)
    extra = dict(properties or {})
    if "start_datetime" in extra:
        start = pystac.utils.str_to_datetime(extra.pop("start_datetime"))
    if "end_datetime" in extra:
        end = pystac.utils.str_to_datetime(extra.pop("end_datetime"))
    props.update(extra)

    item = pystac.Item(
        id=task_id,
        geometry=geometry,
        bbox=[float(b) for b in bbox],
        datetime=None,
        start_datetime=start,
        end_datetime=end,
        properties=props,
        stac_extensions=[PROCESSING_SCHEMA],
    )
    for key, info in assets.items():
        path = Path(info.path).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"asset {key!r} does not exist: {path}")
        asset = pystac.Asset(
            href=str(path),
            title=info.title,
            description=info.description,
            media_type=info.media_type,
            roles=list(info.roles),
        )
        item.add_asset(key, asset)
        file_ext = FileExtension.ext(asset, add_if_missing=True)
        file_ext.size = path.stat().st_size
        if checksums:
            file_ext.checksum = "1220" + sha256_file(path)
        if info.media_type in _RASTER_MEDIA:
            _raster_metadata(asset, path)
    return item


def write_item_atomic(item: pystac.Item, path: str | os.PathLike[str]) -> Path:
    """Write ``item`` to ``path`` atomically, asset hrefs made relative to the item's folder.

    Write it last: it is the task's done marker.  Returns ``path``.
    """
    path = Path(path).resolve()
    item = item.clone()
    item.set_self_href(str(path))
    item.make_asset_hrefs_relative()
    return atomic_write_json(path, item.to_dict(include_self_link=False, transform_hrefs=False))


def update_catalog(root: str | os.PathLike[str], title: str) -> Path:
    """(Re)build ``<root>/catalog.json`` linking every ``<root>/<region>/<year>/item.json``.

    Links are relative (``./<region>/<year>/item.json``), sorted, with the item id as title; the
    file is written atomically.  Returns the catalog path.
    """
    root = Path(root)
    catalog = pystac.Catalog(id="eqi-outputs", description=title, title=title)
    for item_path in sorted(root.glob("*/*/item.json")):
        try:
            item_id = json.loads(item_path.read_text(encoding="utf-8")).get("id")
        except (OSError, ValueError):
            continue  # a half-written or foreign file is not a finished task
        rel = "./" + item_path.relative_to(root).as_posix()
        catalog.add_link(
            pystac.Link(rel="item", target=rel, media_type=pystac.MediaType.JSON, title=item_id)
        )
    return atomic_write_json(
        root / "catalog.json", catalog.to_dict(include_self_link=False, transform_hrefs=False)
    )
