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
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from pyproj import CRS
from pystac.extensions.file import FileExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension, Statistics

from eqi.errors import ConfigError
from eqi.io.atomic import atomic_write_json, sha256_file
from eqi.products import spec_for

__all__ = [
    "AssetInfo",
    "PROCESSING_SCHEMA",
    "CLASSIFICATION_SCHEMA",
    "raster_classes",
    "eqi_version",
    "product_item",
    "write_item_atomic",
    "update_catalog",
    "product_family",
    "FAMILY_TITLES",
]

PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
CLASSIFICATION_SCHEMA = "https://stac-extensions.github.io/classification/v1.1.0/schema.json"
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


def raster_classes(path: str | os.PathLike[str]) -> list[dict[str, Any]] | None:
    """Classification-extension classes of a class raster, from its GDAL attribute table.

    Reads the ``Value`` / ``Class_Name`` rows of ``<path>.aux.xml`` (:func:`eqi.io.cog.rat_xml`)
    and the GeoTIFF colour table; returns ``[{value, description, name, color_hint}]`` (the label
    as description, an ASCII slug of it as name) or None when the raster has no attribute table.
    """
    path = Path(path)
    aux = path.with_name(path.name + ".aux.xml")
    if not aux.is_file():
        return None
    rat = ET.fromstring(aux.read_text(encoding="utf-8")).find("./PAMRasterBand/GDALRasterAttributeTable")
    if rat is None:
        return None
    names = [fd.findtext("Name") for fd in rat.findall("FieldDefn")]
    if "Value" not in names or "Class_Name" not in names:
        return None
    with rasterio.open(path) as src:
        try:
            colormap = src.colormap(1)
        except ValueError:  # no colour table
            colormap = {}
    classes = []
    for row in rat.findall("Row"):
        cells = [f.text or "" for f in row.findall("F")]
        value, label = int(cells[names.index("Value")]), cells[names.index("Class_Name")]
        entry: dict[str, Any] = {"value": value, "description": label,
                                 "name": _slug(label) or f"class_{value}"}  # fmt: skip
        if value in colormap:
            entry["color_hint"] = "{:02X}{:02X}{:02X}".format(*colormap[value][:3])
        classes.append(entry)
    return classes


def _slug(label: str) -> str:
    ascii_part = "".join(c if c.isascii() and c.isalnum() else "_" for c in label)
    return "_".join(part for part in ascii_part.split("_") if part).lower()


def _raster_metadata(asset: pystac.Asset, path: Path) -> bool:
    """Projection (code/WKT2, shape, transform) and raster band metadata read from a GeoTIFF; for
    class rasters the classification extension's classes.  Returns whether classes were added."""
    with rasterio.open(path) as src:
        proj = ProjectionExtension.ext(asset, add_if_missing=True)
        epsg = src.crs.to_epsg() if src.crs else None
        if epsg is not None:
            proj.epsg = epsg
        elif src.crs is not None:
            proj.code = None
            proj.wkt2 = CRS.from_wkt(src.crs.to_wkt()).to_wkt()  # WKT2:2019, as the extension asks
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
    classes = raster_classes(path)
    if classes:
        asset.extra_fields["classification:classes"] = classes
    return bool(classes)


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
        if info.media_type in _RASTER_MEDIA and _raster_metadata(asset, path):
            if CLASSIFICATION_SCHEMA not in item.stac_extensions:
                item.stac_extensions.append(CLASSIFICATION_SCHEMA)
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


def product_family(name: str) -> str:
    """Product family of an output name (registry ``family``; ``change`` for change/trend outputs
    not in the registry, else ``other``)."""
    try:
        return str(spec_for(name).family)
    except ConfigError:
        if any(word in name for word in ("change", "trend", "transition")):
            return "change"
        return "other"


FAMILY_TITLES: dict[str, str] = {
    "composite": "Seasonal composites (reflectance, clear-observation counts)",
    "vegetation": "Vegetation indices and fractional vegetation cover",
    "water": "Water indices",
    "heat": "Land surface temperature",
    "rsei": "Remote Sensing Ecological Index, its components and grades",
    "landcover": "Land cover and its confidence",
    "change": "Change and trends",
    "other": "Other outputs",
}
_COLLECTIONS = "collections"
_STORE = "tile-store"


def _tile_store_collection(root: Path, folder: Path) -> dict[str, Any] | None:
    """A collection linking the items of the tile tasks (``tiles/<stack>/<year>/<tile>/``) and of
    the apply tasks (``areas/<area>/<year>/<tile>/``): the intermediate per-tile products."""
    paths = sorted([*root.glob("tiles/*/*/*/item.json"), *root.glob("areas/*/*/*/item.json")])
    items = []
    for path in paths:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if raw.get("type") == "Feature" and raw.get("bbox"):
            items.append((path, raw))
    if not items:
        return None
    bboxes = np.array([raw["bbox"] for _, raw in items], dtype=float)
    starts = sorted(str(raw["properties"].get("start_datetime")) for _, raw in items)
    ends = sorted(str(raw["properties"].get("end_datetime")) for _, raw in items)
    return {
        "type": "Collection", "stac_version": pystac.get_stac_version(), "stac_extensions": [],
        "id": "eqi-tile-store", "title": "Tile store: per-tile composites, indices and fitted products",
        "description": "Items of the tile tasks (tiles/) and of the apply tasks (areas/<area>/<year>/<tile>/); "
                       "the region outputs are mosaics and clips of these.",
        "license": "other",
        "extent": {"spatial": {"bbox": [[float(bboxes[:, 0].min()), float(bboxes[:, 1].min()),
                                          float(bboxes[:, 2].max()), float(bboxes[:, 3].max())]]},
                   "temporal": {"interval": [[starts[0], ends[-1]]]}},
        "links": [
            {"rel": "root", "href": _rel(root / "catalog.json", folder), "type": pystac.MediaType.JSON},
            {"rel": "parent", "href": _rel(root / "catalog.json", folder), "type": pystac.MediaType.JSON},
            *({"rel": "item", "href": _rel(path, folder), "type": pystac.MediaType.GEOJSON, "title": raw["id"]}
              for path, raw in items),
        ],
    }  # fmt: skip


def _task_items(root: Path) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for item_path in sorted(root.glob("*/*/item.json")):
        try:
            raw = json.loads(item_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a half-written or foreign file is not a finished task
        if raw.get("type") == "Feature" and raw.get("id"):
            found.append((item_path, raw))
    return found


def _rel(target: Path, start: Path) -> str:
    rel = os.path.relpath(target, start).replace(os.sep, "/")
    return rel if rel.startswith(".") else "./" + rel


def _family_view(raw: Mapping[str, Any], item_path: Path, family: str, folder: Path,
                 root: Path) -> dict[str, Any] | None:
    """The assets of one family of a task item, hrefs relative to the family's folder."""
    products = [p for p in raw["properties"].get("eqi:products", []) if product_family(p) == family]
    if not products:
        return None
    keys = {k for p in products for k in (p, f"{p}_style", f"{p}_mosaic")}
    assets = {}
    for key, asset in raw["assets"].items():
        if key in keys:
            asset = dict(asset)
            asset["href"] = _rel(item_path.parent / asset["href"], folder)
            assets[key] = asset
    props = raw["properties"]
    view = {
        "type": "Feature",
        "stac_version": raw.get("stac_version", pystac.get_stac_version()),
        "stac_extensions": [e for e in raw.get("stac_extensions", [])
                            if e != CLASSIFICATION_SCHEMA or any("classification:classes" in a for a in assets.values())],
        "id": f"{props.get('eqi:region', raw['id'])}_{props.get('eqi:year', '')}_{family}",
        "geometry": raw["geometry"],
        "bbox": raw["bbox"],
        "properties": {**props, "eqi:products": products, "eqi:family": family},
        "links": [
            {"rel": "root", "href": _rel(root / "catalog.json", folder), "type": pystac.MediaType.JSON},
            {"rel": "parent", "href": "./collection.json", "type": pystac.MediaType.JSON},
            {"rel": "collection", "href": "./collection.json", "type": pystac.MediaType.JSON},
            {"rel": "related", "href": _rel(item_path, folder), "type": pystac.MediaType.GEOJSON,
             "title": "the task's item (all its outputs; the done marker)"},
        ],
        "assets": assets,
        "collection": f"eqi-{family}",
    }  # fmt: skip
    return view


def _collection(family: str, views: Sequence[dict[str, Any]], root: Path, folder: Path) -> dict[str, Any]:
    bboxes = np.array([v["bbox"] for v in views], dtype=float)
    starts = sorted(v["properties"].get("start_datetime") for v in views)
    ends = sorted(v["properties"].get("end_datetime") for v in views)
    return {
        "type": "Collection",
        "stac_version": pystac.get_stac_version(),
        "stac_extensions": [],
        "id": f"eqi-{family}",
        "title": FAMILY_TITLES.get(family, family),
        "description": f"{FAMILY_TITLES.get(family, family)}: one item per region and year, "
                       "pointing at the same files as the task items.",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [[float(bboxes[:, 0].min()), float(bboxes[:, 1].min()),
                                  float(bboxes[:, 2].max()), float(bboxes[:, 3].max())]]},
            "temporal": {"interval": [[starts[0], ends[-1]]]},
        },
        "summaries": {
            "eqi:products": sorted({p for v in views for p in v["properties"]["eqi:products"]}),
            "eqi:region": sorted({str(v["properties"].get("eqi:region")) for v in views}),
            "eqi:year": sorted({int(v["properties"].get("eqi:year")) for v in views}),
        },
        "links": [
            {"rel": "root", "href": _rel(root / "catalog.json", folder), "type": pystac.MediaType.JSON},
            {"rel": "parent", "href": _rel(root / "catalog.json", folder), "type": pystac.MediaType.JSON},
            *({"rel": "item", "href": f"./{v['id']}.json", "type": pystac.MediaType.GEOJSON,
               "title": v["id"]} for v in views),
        ],
    }  # fmt: skip


def update_catalog(root: str | os.PathLike[str], title: str) -> Path:
    """(Re)build ``<root>/catalog.json``: the task items and one collection per product family.

    The catalog links every ``<root>/<region>/<year>/item.json`` (the task items, done markers)
    and, as children, ``<root>/collections/<family>/collection.json``: one STAC collection per
    product family (:func:`product_family`) whose items (``<region>_<year>_<family>.json``) hold
    that family's assets of each task, pointing at the same files; and
    ``collections/tile-store/collection.json`` linking the items of the tile and apply tasks.  Every link and href is
    relative, so the folder can be moved; files are written atomically and family items of tasks
    that disappeared are removed.  Returns the catalog path.
    """
    root = Path(root)
    catalog = pystac.Catalog(id="eqi-outputs", description=title, title=title)
    tasks = _task_items(root)
    for item_path, raw in tasks:
        catalog.add_link(pystac.Link(rel="item", target=_rel(item_path, root),
                                     media_type=pystac.MediaType.GEOJSON, title=raw["id"]))  # fmt: skip
    families = sorted({product_family(p) for _, raw in tasks for p in raw["properties"].get("eqi:products", [])})
    collections = root / _COLLECTIONS
    keep: set[Path] = set()
    for family in families:
        folder = collections / family
        views = [v for path, raw in tasks if (v := _family_view(raw, path, family, folder, root))]
        if not views:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for view in views:
            keep.add(atomic_write_json(folder / f"{view['id']}.json", view))
        keep.add(atomic_write_json(folder / "collection.json", _collection(family, views, root, folder)))
        catalog.add_link(pystac.Link(rel="child", target=_rel(folder / "collection.json", root),
                                     media_type=pystac.MediaType.JSON, title=FAMILY_TITLES.get(family, family)))  # fmt: skip
    store = _tile_store_collection(root, collections / _STORE)
    if store is not None:
        keep.add(atomic_write_json(collections / _STORE / "collection.json", store))
        catalog.add_link(pystac.Link(rel="child", target=f"./{_COLLECTIONS}/{_STORE}/collection.json",
                                     media_type=pystac.MediaType.JSON, title=store["title"]))  # fmt: skip
    if collections.is_dir():
        for stale in collections.glob("*/*.json"):
            if stale.resolve() not in {k.resolve() for k in keep}:
                stale.unlink()
    catalog_dict = catalog.to_dict(include_self_link=False, transform_hrefs=False)
    catalog_dict["links"].insert(0, {"rel": "root", "href": "./catalog.json", "type": pystac.MediaType.JSON})
    return atomic_write_json(root / "catalog.json", catalog_dict)
