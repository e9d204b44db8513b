"""STAC Items for Sentinel-2 L2A scenes stored as per-band GeoTIFF/COG files beside their item JSON.

The delivered item JSON (e.g. from Earth Search) gives the metadata; its assets are matched to the
files of the folder by file name, assets whose files are absent are dropped, and the bands of the
Sentinel-2 band table (B01-B12, B8A, SCL) that are not in the folder are listed in the property
``eqi:missing_bands``.  ``proj:*`` fields are read from the files themselves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pystac
from pystac.extensions.eo import EOExtension
from shapely.geometry import shape
from shapely.geometry.polygon import orient

from eqi.errors import InputError
from eqi.io.catalog.archive.georef import (
    GEOTIFF,
    MISSING_BANDS,
    apply_raster_asset,
    eo_band,
    file_nodata,
    new_item,
    raster_footprint,
    read_raster,
)
from eqi.io.catalog.base import item_interval
from eqi.sensors import SENSORS, BandSpec, identify_sensor
from eqi.sensors import _bool as stac_bool

__all__ = ["SENTINEL2_COLLECTION", "sentinel2_item"]

SENTINEL2_COLLECTION = "sentinel-2-l2a"
_S2 = SENSORS["sentinel2"]
_S2_SPECS: tuple[BandSpec, ...] = (*_S2.bands.values(), _S2.mask)
_S2_BY_NATIVE: dict[str, BandSpec] = {s.native: s for s in _S2_SPECS}
_S2_BY_ALIAS: dict[str, BandSpec] = {s.alias: s for s in _S2_SPECS}
_RASTER_SUFFIXES = {".tif", ".tiff", ".jp2"}
_DROP_ASSET_FIELDS = ("href", "alternate", "proj:", "file:", "storage:", "raster:bands")
_DROP_LINKS = {"self", "root", "parent", "collection", "canonical", "item", "items"}


def _file_name(href: str) -> str:
    return Path(urlparse(href).path).name


def _read_source(json_path: Path) -> tuple[dict[str, Any], pystac.Item]:
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
        source = pystac.Item.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError, pystac.STACError) as err:
        raise InputError(f"{json_path.name} is not a readable STAC Item ({err})") from err
    if identify_sensor(source).family != "sentinel2-l2a":  # BandError for L1C, non-scenes
        raise InputError(f"{json_path.name}: item {source.id} is not a Sentinel-2 L2A scene")
    return data, source


def _match_files(
    data: dict[str, Any], json_path: Path
) -> list[tuple[str, BandSpec | None, dict[str, Any], Path]]:
    """(new asset key, band spec or None, original asset, file) for every asset found on disk."""
    folder = json_path.parent
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
    return matched


def sentinel2_item(json_path: Path) -> pystac.Item:
    """STAC Item for a Sentinel-2 L2A scene stored as band files next to its item JSON."""
    json_path = Path(os.path.abspath(json_path))
    folder = json_path.parent
    data, source = _read_source(json_path)
    matched = _match_files(data, json_path)
    if not any(spec is not None and spec.kind == "reflectance" for _, spec, _, _ in matched):
        raise InputError(
            f"{json_path.name}: none of its band assets (e.g. B04.tif) were found in {folder}"
        )
    rasters = {
        key: read_raster(path) for key, _, _, path in matched if path.suffix.lower() in _RASTER_SUFFIXES
    }
    reference_key = next((k for k in ("red", "blue", "green", "nir") if k in rasters), None)
    if reference_key is None:
        reference_key = next(k for k, s, _, _ in matched if s is not None and k in rasters)
    reference = rasters[reference_key]
    outline = raster_footprint(reference)
    if source.geometry:
        clipped = outline.intersection(shape(source.geometry))
        if not clipped.is_empty and clipped.geom_type == "Polygon":
            outline = orient(clipped)
    properties = {
        k: v
        for k, v in source.properties.items()
        if not k.startswith("proj:") and k not in {"datetime", "eqi:simulated", MISSING_BANDS}
    }
    if stac_bool(source.properties.get("eqi:simulated")) is True:
        properties["eqi:simulated"] = True
    present = {spec.alias for _, spec, _, _ in matched if spec is not None}
    missing = [spec.native for spec in _S2_SPECS if spec.alias not in present]
    if missing:
        properties[MISSING_BANDS] = missing
    when = source.datetime or item_interval(source)[0]
    item = new_item(source.id, when, outline, properties, SENTINEL2_COLLECTION, reference)
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
        media = original.get("type") or (GEOTIFF if key in rasters else None)
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
        apply_raster_asset(
            asset,
            raster,
            scale=given.get("scale", default_scale),
            offset=given.get("offset", 0.0 if default_scale is not None else None),
            nodata=file_nodata(raster, given.get("nodata", 0)),
            unit=given.get("unit"),
        )
        if spec is not None and spec.kind == "reflectance" and "eo:bands" not in extra:
            EOExtension.ext(asset).apply(bands=[eo_band(spec, _S2, spec.native)])
    return item
