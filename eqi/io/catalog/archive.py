"""Index delivered scenes into a stac-geoparquet archive, and search that archive in-process.

``eqi archive index DIR... --out FILE.parquet`` walks folders for

* USGS Landsat Collection 2 Level-2 scene folders, found by ``*_MTL.txt`` / ``*_MTL.json``
  (SR bands required; ST and QA_PIXEL optional; scale/offset taken from the MTL), and
* Sentinel-2 L2A scenes stored as per-band GeoTIFF/COG files next to their STAC Item JSON (assets
  are matched to files by file name; assets whose files are absent are dropped),

and writes one STAC 1.1 Item per scene (extensions eo, raster, projection; ``proj:*`` read from the
files themselves; asset keys are eqi band aliases; hrefs are absolute local paths) to a
stac-geoparquet file with rustac.  Unreadable scenes are skipped and listed in the report.

:class:`ArchiveCatalog` reads the file with rustac and filters by bbox, datetime and collection
in-process (rustac's DuckDB search needs a DuckDB extension that it downloads at run time, which
offline machines cannot do).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pystac
import rasterio
import rustac
from pyproj import Transformer
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension
from rasterio.errors import RasterioError
from rasterio.windows import Window
from shapely.geometry import box, mapping, shape
from shapely.geometry.polygon import orient

from eqi.errors import BandError, InputError
from eqi.io.atomic import atomic_path
from eqi.io.catalog.base import (
    BBox,
    check_bbox,
    check_collections_arg,
    item_interval,
    parse_interval,
    sort_items,
)
from eqi.io.catalog.mtl import LandsatMtl, read_mtl
from eqi.sensors import SENSORS, BandSpec, SensorSpec, identify_sensor

__all__ = [
    "ArchiveCatalog",
    "IndexReport",
    "SkippedScene",
    "index_archive",
    "scan_scenes",
    "landsat_item",
    "sentinel2_item",
    "write_archive",
    "read_archive",
    "LANDSAT_COLLECTION",
    "SENTINEL2_COLLECTION",
]

log = logging.getLogger(__name__)

LANDSAT_COLLECTION = "landsat-c2-l2"
SENTINEL2_COLLECTION = "sentinel-2-l2a"
_MTL_SUFFIXES = ("_MTL.json", "_MTL.txt")  # preference order
_PATTERNS = (
    "Landsat C2 L2 folders with *_MTL.txt or *_MTL.json; Sentinel-2 L2A folders with a STAC "
    "Item *.json whose assets name band files beside it (e.g. B04.tif)"
)
_GEOTIFF = str(pystac.MediaType.GEOTIFF)
_DENSIFY = 10  # points per footprint edge when reprojecting to WGS84


@dataclass(frozen=True)
class SkippedScene:
    """A scene that could not be indexed and why."""

    path: Path
    reason: str


@dataclass
class IndexReport:
    """What :func:`index_archive` did."""

    out: Path
    item_ids: list[str]
    skipped: list[SkippedScene] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def __str__(self) -> str:
        return self.summary()

    def summary(self) -> str:
        """Human-readable lines for the command line."""
        lines = [f"indexed {self.n_items} scene(s) into {self.out} in {self.seconds:.2f} s"]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.skipped]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------- rasters


@dataclass(frozen=True)
class _Raster:
    code: str  # "EPSG:32618"
    wkt: str
    shape: tuple[int, int]  # rows, cols
    transform: tuple[float, ...]  # 6 affine coefficients
    bounds: tuple[float, float, float, float]
    dtype: str
    nodata: float | None
    resolution: float  # metres (x pixel size)


def _read_raster(path: Path) -> _Raster:
    """Georeferencing of a single-band raster; reads its first and last pixel to catch truncation."""
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise InputError(f"{path} has no CRS")
            h, w = src.height, src.width
            src.read(1, window=Window(0, 0, 1, 1))
            src.read(1, window=Window(w - 1, h - 1, 1, 1))
            epsg = src.crs.to_epsg()
            return _Raster(
                code=f"EPSG:{epsg}" if epsg else src.crs.to_string(),
                wkt=src.crs.to_wkt(),
                shape=(h, w),
                transform=tuple(float(v) for v in list(src.transform)[:6]),
                bounds=tuple(src.bounds),
                dtype=src.dtypes[0],
                nodata=src.nodata,
                resolution=abs(float(src.transform.a)),
            )
    except RasterioError as err:
        raise InputError(f"cannot read {path.name}: {err}") from err


def _footprint(raster: _Raster) -> Any:
    """Raster bounds as a WGS84 polygon, edges densified before reprojection (shapely)."""
    left, bottom, right, top = raster.bounds
    outline = box(left, bottom, right, top).segmentize(max(right - left, top - bottom) / _DENSIFY)
    to_wgs84 = Transformer.from_crs(raster.wkt, "EPSG:4326", always_xy=True)
    xs, ys = to_wgs84.transform(*outline.exterior.xy)
    if not all(map(math.isfinite, [*xs, *ys])):
        raise InputError("footprint cannot be reprojected to WGS84")
    return orient(shape({"type": "Polygon", "coordinates": [list(zip(xs, ys, strict=True))]}))


def _geojson(geom: Any) -> tuple[dict[str, Any], list[float]]:
    rounded = json.loads(json.dumps(mapping(geom)), parse_float=lambda v: round(float(v), 7))
    return rounded, [round(v, 7) for v in geom.bounds]


def _nodata(raster: _Raster, default: float | None) -> float | None:
    return raster.nodata if raster.nodata is not None else default


def _apply_raster_asset(
    asset: pystac.Asset,
    raster: _Raster,
    *,
    scale: float | None,
    offset: float | None,
    nodata: float | None,
    unit: str | None = None,
) -> None:
    ProjectionExtension.ext(asset).apply(
        code=raster.code, shape=list(raster.shape), transform=list(raster.transform)
    )
    band = RasterBand.create(
        nodata=nodata,
        data_type=raster.dtype,
        spatial_resolution=raster.resolution,
        scale=scale,
        offset=offset,
        unit=unit,
    )
    RasterExtension.ext(asset).apply(bands=[band])


def _eo_band(spec: BandSpec, sensor: SensorSpec, name: str) -> Band:
    common = spec.alias
    if spec.alias.startswith("rededge"):
        common = "rededge"
    elif spec.alias == "nir" and sensor.id in {"landsat8", "landsat9"}:
        common = "nir08"  # OLI B5 0.85-0.88 um
    elif spec.alias == "lwir" and spec.native == "ST_B10":
        common = "lwir11"
    return Band.create(name=name, common_name=common, center_wavelength=spec.center_um)


def _new_item(
    item_id: str,
    when: datetime,
    footprint: Any,
    properties: dict[str, Any],
    collection: str,
    reference: _Raster,
) -> pystac.Item:
    geometry, bbox = _geojson(footprint)
    when = when.astimezone(UTC).replace(microsecond=when.microsecond // 1000 * 1000)
    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=bbox,
        datetime=when,
        properties=properties,
        collection=collection,
    )
    EOExtension.add_to(item)
    RasterExtension.add_to(item)
    ProjectionExtension.ext(item, add_if_missing=True).apply(
        code=reference.code, shape=list(reference.shape), transform=list(reference.transform)
    )
    item.add_link(
        pystac.Link(
            rel=pystac.RelType.COLLECTION,
            target=f"collections/{collection}",
            media_type=pystac.MediaType.JSON,
            title=collection,
        )
    )
    return item


# ------------------------------------------------------------------------------------ Landsat


def _instruments(sensor_id: str) -> list[str]:
    names = {"OLI": "oli", "TIRS": "tirs", "TM": "tm", "ETM": "etm+", "MSS": "mss"}
    return [names.get(part, part.lower()) for part in sensor_id.split("_") if part]


def landsat_item(mtl_path: Path) -> pystac.Item:
    """STAC Item for one USGS Landsat C2 L2 scene folder, from its MTL file and band files."""
    mtl_path = Path(os.path.abspath(mtl_path))  # absolute, symlinks kept (not resolve())
    folder = mtl_path.parent
    mtl: LandsatMtl = read_mtl(mtl_path)
    if not mtl.processing_level.upper().startswith("L2"):
        raise InputError(
            f"{mtl.product_id} is processing level '{mtl.processing_level}', not Level-2 "
            "surface reflectance; order Collection 2 Level-2 (L2SP) products"
        )
    sensor = SENSORS.get(f"landsat{mtl.number}")
    if sensor is None:
        raise InputError(f"{mtl.product_id}: {mtl.spacecraft_id} is not Landsat 5/7/8/9")
    specs = [*sensor.bands.values(), sensor.mask]
    rasters: dict[str, tuple[Path, _Raster]] = {}
    for spec in specs:
        name = mtl.files.get(spec.native)
        path = folder / name if name else None
        if path is None or not path.is_file():
            if spec.kind == "reflectance":
                raise InputError(
                    f"{mtl.product_id}: required band {spec.native} "
                    f"({name or 'not listed in the MTL'}) is missing from {folder}"
                )
            continue  # ST and QA_PIXEL are optional
        rasters[spec.alias] = (path, _read_raster(path))
    reference = rasters["red"][1]
    properties: dict[str, Any] = {
        "platform": f"landsat-{mtl.number}",
        "constellation": "landsat",
        "instruments": _instruments(mtl.sensor_id),
        "landsat:correction": mtl.processing_level,
        "eqi:origin": "; ".join(mtl.origin),
    }
    if mtl.cloud_cover is not None and mtl.cloud_cover >= 0:
        properties["eo:cloud_cover"] = mtl.cloud_cover
    if mtl.cloud_cover_land is not None and mtl.cloud_cover_land >= 0:
        properties["landsat:cloud_cover_land"] = mtl.cloud_cover_land
    if mtl.wrs_path is not None and mtl.wrs_row is not None:
        properties["landsat:wrs_path"] = f"{mtl.wrs_path:03d}"
        properties["landsat:wrs_row"] = f"{mtl.wrs_row:03d}"
    if mtl.collection_category:
        properties["landsat:collection_category"] = mtl.collection_category
    if mtl.collection_number:
        properties["landsat:collection_number"] = mtl.collection_number
    if mtl.simulated:
        properties["eqi:simulated"] = True
    item = _new_item(
        mtl.product_id,
        mtl.datetime,
        _footprint(reference),
        properties,
        LANDSAT_COLLECTION,
        reference,
    )
    for spec in specs:
        if spec.alias not in rasters:
            continue
        path, raster = rasters[spec.alias]
        is_mask = spec.kind == "mask"
        asset = pystac.Asset(
            href=str(path),
            media_type=_GEOTIFF,
            title=f"{spec.alias} ({spec.native})",
            roles=["data", "cloud-mask"] if is_mask else ["data"],
        )
        item.add_asset(spec.alias, asset)
        scale, offset = mtl.scaling.get(spec.native, (spec.scale, spec.offset))
        _apply_raster_asset(
            asset,
            raster,
            scale=None if is_mask else scale,
            offset=None if is_mask else offset,
            nodata=_nodata(raster, spec.nodata),
            unit="kelvin" if spec.kind == "temperature" else None,
        )
        if not is_mask:
            EOExtension.ext(asset).apply(bands=[_eo_band(spec, sensor, spec.native)])
    radsat = mtl.files.get("QA_RADSAT")
    if radsat and (folder / radsat).is_file():
        path = folder / radsat
        asset = pystac.Asset(href=str(path), media_type=_GEOTIFF, title="QA_RADSAT", roles=["data"])
        item.add_asset("qa_radsat", asset)
        _apply_raster_asset(asset, _read_raster(path), scale=None, offset=None, nodata=None)
    media = pystac.MediaType.JSON if mtl_path.suffix.lower() == ".json" else pystac.MediaType.TEXT
    item.add_asset(
        "mtl",
        pystac.Asset(
            href=str(mtl_path), media_type=media, title="USGS MTL metadata", roles=["metadata"]
        ),
    )
    return item


# --------------------------------------------------------------------------------- Sentinel-2

_S2 = SENSORS["sentinel2"]
_S2_BY_NATIVE: dict[str, BandSpec] = {s.native: s for s in [*_S2.bands.values(), _S2.mask]}
_S2_BY_ALIAS: dict[str, BandSpec] = {s.alias: s for s in [*_S2.bands.values(), _S2.mask]}
_DROP_ASSET_FIELDS = ("href", "alternate", "proj:", "file:", "storage:", "raster:bands")
_DROP_LINKS = {"self", "root", "parent", "collection", "canonical", "item", "items"}


def _is_simulated(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _file_name(href: str) -> str:
    return Path(urlparse(href).path).name


def sentinel2_item(json_path: Path) -> pystac.Item:
    """STAC Item for a Sentinel-2 L2A scene stored as band files next to its item JSON."""
    json_path = Path(os.path.abspath(json_path))
    folder = json_path.parent
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
        source = pystac.Item.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError, pystac.STACError) as err:
        raise InputError(f"{json_path.name} is not a readable STAC Item ({err})") from err
    if identify_sensor(source).family != "sentinel2-l2a":  # BandError for L1C, non-scenes
        raise InputError(f"{json_path.name}: item {source.id} is not a Sentinel-2 L2A scene")
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    lower = {name.lower(): p for name, p in files.items()}
    matched: list[tuple[str, BandSpec | None, dict[str, Any], Path]] = []
    used: set[str] = set()
    for key, asset in sorted(data.get("assets", {}).items()):
        name = _file_name(str(asset.get("href", "")))
        path = files.get(name) or lower.get(name.lower())
        if not name or path is None or path == json_path:
            continue
        spec = _S2_BY_ALIAS.get(key) or _S2_BY_NATIVE.get(Path(name).stem.upper())
        new_key = spec.alias if spec is not None and spec.alias not in used else key
        used.add(new_key)
        matched.append(
            (new_key, spec if new_key == getattr(spec, "alias", None) else None, asset, path)
        )
    if not any(spec is not None and spec.kind == "reflectance" for _, spec, _, _ in matched):
        raise InputError(
            f"{json_path.name}: none of its band assets (e.g. B04.tif) were found in {folder}"
        )
    rasters = {
        key: _read_raster(path)
        for key, _, _, path in matched
        if path.suffix.lower() in {".tif", ".tiff", ".jp2"}
    }
    reference_key = next((k for k in ("red", "blue", "green", "nir") if k in rasters), None)
    if reference_key is None:
        reference_key = next(k for k, s, _, _ in matched if s is not None and k in rasters)
    reference = rasters[reference_key]
    footprint = _footprint(reference)
    if source.geometry:
        clipped = footprint.intersection(shape(source.geometry))
        if not clipped.is_empty and clipped.geom_type == "Polygon":
            footprint = orient(clipped)
    properties = {
        k: v
        for k, v in source.properties.items()
        if not k.startswith("proj:") and k not in {"datetime", "eqi:simulated"}
    }
    if _is_simulated(source.properties.get("eqi:simulated")):
        properties["eqi:simulated"] = True
    when = source.datetime or item_interval(source)[0]
    item = _new_item(source.id, when, footprint, properties, SENTINEL2_COLLECTION, reference)
    keep = [
        ext
        for ext in data.get("stac_extensions", [])
        if not any(f"/{name}/" in ext for name in ("eo", "raster", "projection"))
    ]
    item.stac_extensions = sorted({*keep, *item.stac_extensions})
    for link in data.get("links", []):
        if link.get("rel") not in _DROP_LINKS and link.get("href"):
            item.add_link(pystac.Link.from_dict(link))
    for key, spec, original, path in matched:
        extra = {k: v for k, v in original.items() if not k.startswith(_DROP_ASSET_FIELDS)}
        extra.pop("roles", None)
        extra.pop("type", None)
        title = extra.pop("title", None)
        description = extra.pop("description", None)
        if spec is None:
            roles = list(original.get("roles") or ["data"])
        else:
            roles = ["data", "cloud-mask"] if spec.kind == "mask" else ["data"]
        media = original.get("type") or (_GEOTIFF if key in rasters else None)
        asset = pystac.Asset(
            href=str(path),
            title=title,
            description=description,
            media_type=media,
            roles=roles,
            extra_fields=extra,
        )
        item.add_asset(key, asset)
        if key not in rasters:
            continue
        raster = rasters[key]
        given = (original.get("raster:bands") or [{}])[0]
        default_scale = None if spec is None or spec.kind == "mask" else spec.scale
        _apply_raster_asset(
            asset,
            raster,
            scale=given.get("scale", default_scale),
            offset=given.get("offset", 0.0 if default_scale is not None else None),
            nodata=_nodata(raster, given.get("nodata", 0)),
            unit=given.get("unit"),
        )
        if spec is not None and spec.kind == "reflectance" and "eo:bands" not in extra:
            EOExtension.ext(asset).apply(bands=[_eo_band(spec, _S2, spec.native)])
    return item


# ------------------------------------------------------------------------------------ walking


def _landsat_candidates(folder: Path, names: list[str]) -> dict[str, list[Path]]:
    """MTL files of a folder grouped by product id, JSON before TXT."""
    found: dict[str, list[Path]] = {}
    for suffix in _MTL_SUFFIXES:
        for name in names:
            if name.upper().endswith(suffix.upper()) and not name.startswith("."):
                found.setdefault(name[: -len(suffix)], []).append(folder / name)
    return found


def _looks_like_s2_item(path: Path) -> bool:
    try:
        if path.stat().st_size > 5_000_000:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(data, dict)
        and data.get("type") == "Feature"
        and isinstance(data.get("assets"), dict)
        and (
            str(data.get("collection", "")).startswith("sentinel-2")
            or str(data.get("properties", {}).get("platform", "")).lower().startswith("sentinel-2")
        )
    )


def scan_scenes(dirs: Sequence[str | Path]) -> tuple[list[pystac.Item], list[SkippedScene]]:
    """Find and describe every scene under ``dirs``; unreadable scenes are returned as skipped."""
    roots = [Path(d).expanduser() for d in dirs]
    if not roots:
        raise InputError("no folder given; usage: eqi archive index DIR... --out FILE.parquet")
    for root in roots:
        if not root.is_dir():
            raise InputError(f"folder {root} does not exist (or is not a folder)")
    items: dict[str, pystac.Item] = {}
    skipped: list[SkippedScene] = []

    def add(build: Any, candidates: list[Path]) -> None:
        errors: list[str] = []
        for candidate in candidates:
            try:
                item = build(candidate)
            except (InputError, BandError) as err:
                errors.append(str(err))
                continue
            if item.id in items:
                skipped.append(
                    SkippedScene(candidate, f"duplicate of scene {item.id} already indexed")
                )
            else:
                items[item.id] = item
            return
        skipped.append(SkippedScene(candidates[0], errors[0]))
        log.warning("skipped %s: %s", candidates[0], errors[0])

    for root in roots:
        for current, subdirs, names in os.walk(root):
            subdirs.sort()
            folder = Path(current)
            names = sorted(names)
            landsat = _landsat_candidates(folder, names)
            for _, candidates in sorted(landsat.items()):
                add(landsat_item, candidates)
            if landsat:
                continue  # the USGS STAC JSONs of a Landsat folder describe the same scene
            for name in names:
                path = folder / name
                if (
                    name.lower().endswith(".json")
                    and not name.startswith(".")
                    and _looks_like_s2_item(path)
                ):
                    add(sentinel2_item, [path])
    return sort_items(items.values()), skipped


# ------------------------------------------------------------------------------ parquet files


def write_archive(items: Iterable[pystac.Item], out: str | Path) -> Path:
    """Write items (sorted by datetime, id) to a stac-geoparquet file atomically with rustac."""
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    dicts = [item.to_dict(transform_hrefs=False) for item in sort_items(items)]
    with atomic_path(out) as tmp:
        rustac.write_sync(str(tmp), dicts, format="geoparquet")
    return out


def read_archive(path: str | Path) -> list[pystac.Item]:
    """All items of a stac-geoparquet archive (rustac reader), sorted by datetime then id."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(
            f"archive file {path} not found; build it with: eqi archive index DIR... --out {path}"
        )
    try:
        collection = rustac.read_sync(str(path), format="geoparquet", set_self_link=False)
    except Exception as err:  # rustac raises its own error types for I/O and format problems
        raise InputError(
            f"archive file {path} cannot be read as stac-geoparquet ({str(err)[:200]}); "
            f"rebuild it with: eqi archive index DIR... --out {path}"
        ) from err
    items = []
    for feature in collection.get("features", []):
        if isinstance(feature.get("bbox"), tuple):
            feature["bbox"] = list(feature["bbox"])
        # stac-geoparquet stores properties as columns: a property another item has comes back
        # as null here; drop those (a null datetime is kept, it means a start/end range).
        props = feature.get("properties", {})
        feature["properties"] = {k: v for k, v in props.items() if v is not None or k == "datetime"}
        items.append(pystac.Item.from_dict(feature, preserve_dict=False))
    return sort_items(items)


def index_archive(dirs: Sequence[str | Path], out: str | Path) -> IndexReport:
    """Index every scene under ``dirs`` into the stac-geoparquet file ``out``.

    Raises :class:`InputError` when a folder does not exist or no scene is found at all;
    unreadable scenes are skipped and listed in the returned :class:`IndexReport`.
    """
    started = time.perf_counter()
    items, skipped = scan_scenes(dirs)
    if not items:
        where = ", ".join(str(d) for d in dirs)
        reasons = "".join(f"\n  {s.path}: {s.reason}" for s in skipped)
        raise InputError(f"no scenes found in {where}; looked for {_PATTERNS}{reasons}")
    path = write_archive(items, out)
    return IndexReport(
        out=path,
        item_ids=[item.id for item in items],
        skipped=skipped,
        seconds=time.perf_counter() - started,
    )


# ------------------------------------------------------------------------------------- search


def _query_area(bbox: BBox) -> Any:
    west, south, east, north = bbox
    if west <= east:
        return box(west, south, east, north)
    return box(west, south, 180.0, north).union(box(-180.0, south, east, north))


class ArchiveCatalog:
    """A local stac-geoparquet archive searched in-process (see :class:`~eqi.io.catalog.base.Catalog`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._items: list[pystac.Item] | None = None
        if not self.path.is_file():
            raise InputError(
                f"archive file {self.path} not found; build it with: "
                f"eqi archive index DIR... --out {self.path}"
            )
        self.items()  # fail early, naming the file, when it is not stac-geoparquet

    def __repr__(self) -> str:
        return f"ArchiveCatalog({str(self.path)!r})"

    def items(self) -> list[pystac.Item]:
        """Every item of the archive (read once, cached)."""
        if self._items is None:
            self._items = read_archive(self.path)
        return self._items

    def search(
        self,
        *,
        bbox: BBox,
        datetime: str,
        collections: list[str],
        limit: int | None = None,
    ) -> list[pystac.Item]:
        """Items intersecting ``bbox`` within ``datetime`` in ``collections``, sorted."""
        area = _query_area(check_bbox(bbox))
        start, end = parse_interval(datetime)
        wanted = set(check_collections_arg(collections))
        found = []
        for item in self.items():
            if item.collection_id not in wanted:
                continue
            first, last = item_interval(item)
            if (start is not None and last < start) or (end is not None and first > end):
                continue
            footprint = shape(item.geometry) if item.geometry else box(*item.bbox[:4])
            if not footprint.intersects(area):
                continue
            found.append(item.clone())
        found = sort_items(found)
        return found[:limit] if limit is not None else found
