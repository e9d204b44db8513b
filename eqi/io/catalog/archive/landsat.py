"""STAC Items for USGS Landsat Collection 2 Level-2 scene folders (``*_MTL.txt`` / ``*_MTL.json``).

The MTL file gives the scene's metadata, the file name and the scale/offset of every band; the
band files give the georeferencing.  A folder may hold only some of the bands (a partial
download): the item gets the bands that are there and lists the others in the property
``eqi:missing_bands`` (USGS band names, e.g. ``["SR_B1", "QA_PIXEL"]``).  A folder with none of the
surface reflectance or temperature files is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.eo import EOExtension

from eqi.errors import InputError
from eqi.io.catalog.archive.georef import (
    GEOTIFF,
    MISSING_BANDS,
    RasterInfo,
    apply_raster_asset,
    eo_band,
    file_nodata,
    new_item,
    raster_footprint,
    read_raster,
)
from eqi.io.catalog.mtl import LandsatMtl, read_mtl
from eqi.sensors import SENSORS, BandSpec

__all__ = ["LANDSAT_COLLECTION", "landsat_item"]

LANDSAT_COLLECTION = "landsat-c2-l2"


def _instruments(sensor_id: str) -> list[str]:
    names = {"OLI": "oli", "TIRS": "tirs", "TM": "tm", "ETM": "etm+", "MSS": "mss"}
    return [names.get(part, part.lower()) for part in sensor_id.split("_") if part]


def _expected(spec: BandSpec, mtl: LandsatMtl) -> bool:
    """Whether a delivery of this product should hold the band (L2SR has no thermal band)."""
    if spec.kind != "temperature":
        return True
    return spec.native in mtl.files or mtl.processing_level.upper().startswith("L2SP")


def _properties(mtl: LandsatMtl, missing: list[str]) -> dict[str, Any]:
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
    if missing:
        properties[MISSING_BANDS] = missing
    return properties


def landsat_item(mtl_path: Path) -> pystac.Item:
    """STAC Item for one USGS Landsat C2 L2 scene folder, from its MTL file and band files.

    Bands whose files are absent are left out and named in ``eqi:missing_bands``; raises
    :class:`InputError` for a non-Level-2 product, an unknown spacecraft or a folder without any
    surface reflectance / temperature file.
    """
    mtl_path = Path(os.path.abspath(mtl_path))  # absolute, symlinks kept (not resolve())
    folder = mtl_path.parent
    mtl = read_mtl(mtl_path)
    if not mtl.processing_level.upper().startswith("L2"):
        raise InputError(
            f"{mtl.product_id} is processing level '{mtl.processing_level}', not Level-2 "
            "surface reflectance; order Collection 2 Level-2 (L2SP) products"
        )
    sensor = SENSORS.get(f"landsat{mtl.number}")
    if sensor is None:
        raise InputError(f"{mtl.product_id}: {mtl.spacecraft_id} is not Landsat 5/7/8/9")
    specs = [*sensor.bands.values(), sensor.mask]
    rasters: dict[str, tuple[Path, RasterInfo]] = {}
    missing: list[str] = []
    for spec in specs:
        name = mtl.files.get(spec.native)
        path = folder / name if name else None
        if path is None or not path.is_file():
            if _expected(spec, mtl):
                missing.append(spec.native)
            continue
        rasters[spec.alias] = (path, read_raster(path))
    data = [s.alias for s in sensor.bands.values() if s.alias in rasters]
    if not data:
        raise InputError(
            f"{mtl.product_id}: none of its band files (e.g. "
            f"{mtl.files.get('SR_B4', mtl.product_id + '_SR_B4.TIF')}) are in {folder}"
        )
    reference = rasters["red" if "red" in rasters else data[0]][1]
    item = new_item(
        mtl.product_id,
        mtl.datetime,
        raster_footprint(reference),
        _properties(mtl, missing),
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
            media_type=GEOTIFF,
            title=f"{spec.alias} ({spec.native})",
            roles=["data", "cloud-mask"] if is_mask else ["data"],
        )
        item.add_asset(spec.alias, asset)
        scale, offset = mtl.scaling.get(spec.native, (spec.scale, spec.offset))
        apply_raster_asset(
            asset,
            raster,
            scale=None if is_mask else scale,
            offset=None if is_mask else offset,
            nodata=file_nodata(raster, spec.nodata),
            unit="kelvin" if spec.kind == "temperature" else None,
        )
        if not is_mask:
            EOExtension.ext(asset).apply(bands=[eo_band(spec, sensor, spec.native)])
    radsat = mtl.files.get("QA_RADSAT")
    if radsat and (folder / radsat).is_file():
        path = folder / radsat
        asset = pystac.Asset(href=str(path), media_type=GEOTIFF, title="QA_RADSAT", roles=["data"])
        item.add_asset("qa_radsat", asset)
        apply_raster_asset(asset, read_raster(path), scale=None, offset=None, nodata=None)
    media = pystac.MediaType.JSON if mtl_path.suffix.lower() == ".json" else pystac.MediaType.TEXT
    item.add_asset(
        "mtl",
        pystac.Asset(
            href=str(mtl_path), media_type=media, title="USGS MTL metadata", roles=["metadata"]
        ),
    )
    return item
