"""Georeferencing of delivered band files, and the STAC pieces built from it.

:func:`read_raster` opens one single-band raster (reading its first and last pixel, so a truncated
download fails here and not in the middle of a run); :func:`new_item` and :func:`apply_raster_asset`
turn that into a STAC 1.1 Item / Asset with the projection and raster extensions; the footprint is
:func:`eqi.geo.footprint.footprint` of the file's bounds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pystac
import rasterio
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterBand, RasterExtension
from rasterio.errors import RasterioError
from rasterio.windows import Window
from shapely.geometry import mapping

from eqi.errors import InputError
from eqi.geo.footprint import footprint
from eqi.sensors import BandSpec, SensorSpec

__all__ = [
    "GEOTIFF",
    "MISSING_BANDS",
    "RasterInfo",
    "read_raster",
    "raster_footprint",
    "file_nodata",
    "apply_raster_asset",
    "eo_band",
    "new_item",
]

GEOTIFF = str(pystac.MediaType.GEOTIFF)
MISSING_BANDS = "eqi:missing_bands"  # item property: band files the delivery lacks (USGS/ESA names)


@dataclass(frozen=True)
class RasterInfo:
    """What the index records about one band file."""

    code: str  # "EPSG:32618" (or the CRS string when it has no EPSG code)
    wkt: str
    shape: tuple[int, int]  # rows, cols
    transform: tuple[float, ...]  # 6 affine coefficients
    bounds: tuple[float, float, float, float]
    dtype: str
    nodata: float | None
    resolution: float  # metres (x pixel size)


def read_raster(path: Path) -> RasterInfo:
    """Georeferencing of a single-band raster; reads its first and last pixel to catch truncation."""
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise InputError(f"{path} has no CRS")
            h, w = src.height, src.width
            src.read(1, window=Window(0, 0, 1, 1))
            src.read(1, window=Window(w - 1, h - 1, 1, 1))
            epsg = src.crs.to_epsg()
            return RasterInfo(
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


def raster_footprint(raster: RasterInfo) -> Any:
    """The file's bounds as a WGS 84 polygon (shapely)."""
    return footprint(raster.bounds, raster.wkt)


def file_nodata(raster: RasterInfo, default: float | None) -> float | None:
    """The nodata value the file declares, else ``default``."""
    return raster.nodata if raster.nodata is not None else default


def _geojson(geom: Any) -> tuple[dict[str, Any], list[float]]:
    rounded = json.loads(json.dumps(mapping(geom)), parse_float=lambda v: round(float(v), 7))
    return rounded, [round(v, 7) for v in geom.bounds]


def apply_raster_asset(
    asset: pystac.Asset,
    raster: RasterInfo,
    *,
    scale: float | None,
    offset: float | None,
    nodata: float | None,
    unit: str | None = None,
) -> None:
    """Projection and raster-extension fields of one band asset."""
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


def eo_band(spec: BandSpec, sensor: SensorSpec, name: str) -> Band:
    """The eo:bands entry of a band, with the STAC common name."""
    common = spec.alias
    if spec.alias.startswith("rededge"):
        common = "rededge"
    elif spec.alias == "nir" and sensor.id in {"landsat8", "landsat9"}:
        common = "nir08"  # OLI B5 0.85-0.88 um
    elif spec.alias == "lwir" and spec.native == "ST_B10":
        common = "lwir11"
    return Band.create(name=name, common_name=common, center_wavelength=spec.center_um)


def new_item(
    item_id: str,
    when: datetime,
    outline: Any,
    properties: dict[str, Any],
    collection: str,
    reference: RasterInfo,
) -> pystac.Item:
    """An empty STAC 1.1 Item (eo, raster, projection) with a link to its collection."""
    geometry, bbox = _geojson(outline)
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
