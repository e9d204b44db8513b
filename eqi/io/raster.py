"""Reading finished rasters back lazily, VRT mosaics over tiles, and region masks on a grid.

Tile products are read back as Dask-backed arrays with their odc-geo GeoBox (rioxarray), so the
fit and apply stages never hold more than a block per task.  Mosaics are GDAL VRT files placing
each tile file at its pixel offset (tiles share one grid, so no resampling happens); a reader sees
one raster, and a missing tile reads as nodata.
"""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import rioxarray
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry
from odc.geo.xr import rasterize, xr_coords
from shapely.geometry.base import BaseGeometry

from eqi.errors import InputError
from eqi.io.atomic import atomic_write_text

__all__ = ["open_raster", "read_layer", "check_raster", "read_onto", "write_vrt", "region_mask"]

_GDAL_TYPES = {
    "uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
    "int32": "Int32", "float32": "Float32", "float64": "Float64",
}  # fmt: skip


def open_raster(path: str | os.PathLike[str], *, chunk: int = 512) -> xr.DataArray:
    """Band 1 of a GeoTIFF/VRT as a lazy ``(y, x)`` DataArray on its GeoBox.

    Values are as stored (no masking); ``attrs["nodata"]`` holds the nodata value.
    """
    da = rioxarray.open_rasterio(path, chunks={"x": chunk, "y": chunk}, masked=False, lock=False)
    da = da.squeeze("band", drop=True)
    geobox = GeoBox(da.shape, da.rio.transform(), da.rio.crs.to_wkt())
    out = xr.DataArray(da.data, dims=("y", "x"), attrs={"nodata": da.rio.nodata})
    return out.assign_coords(xr_coords(geobox))


def read_layer(path: str | os.PathLike[str], *, chunk: int = 512) -> xr.DataArray:
    """A product raster for computation: float32 with nodata as NaN, integers as stored."""
    da = open_raster(path, chunk=chunk)
    nodata = da.attrs.get("nodata")
    if np.issubdtype(da.dtype, np.floating):
        if nodata is not None and not np.isnan(nodata):
            da = da.where(da != nodata)
        return da.astype(np.float32)
    return da


def check_raster(path: str | os.PathLike[str], field: str) -> None:
    """Raise :class:`InputError` naming ``field`` and the file when ``path`` is missing, cannot
    be read, or has no CRS (only the header and one pixel are read)."""
    if "://" not in str(path) and not Path(path).is_file():
        raise InputError(f"{field}: file {path} not found")
    try:
        with rasterio.open(path) as src:
            src.read(1, window=((0, 1), (0, 1)))
            crs = src.crs
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise InputError(f"{field}: cannot read {path}: {exc}") from None
    if crs is None:
        raise InputError(f"{field}: {path} has no CRS; assign one (gdal_edit.py -a_srs)")


def read_onto(path: str | os.PathLike[str], geobox: GeoBox, *, resampling: str = "bilinear") -> np.ndarray:
    """Band 1 of a raster in any CRS and resolution, on ``geobox``: float32 in the file's units
    (its scale/offset applied), NaN where the file has nodata or does not reach.

    Reprojection is odc-geo's (``.odc.reproject``, GDAL warp; the accessor comes with
    ``odc.geo.xr``) with ``resampling``.
    """
    src = rioxarray.open_rasterio(path, masked=True, mask_and_scale=True).squeeze("band", drop=True)
    out = src.astype(np.float32).odc.reproject(geobox, resampling=resampling)
    return np.asarray(out.values, dtype=np.float32)


def _fmt(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return repr(value) if isinstance(value, float) else str(value)


def write_vrt(
    path: str | os.PathLike[str],
    geobox: GeoBox,
    sources: Sequence[tuple[Path, GeoBox]],
    *,
    dtype: str,
    nodata: float | int | None,
    description: str = "",
) -> Path:
    """Write a VRT covering ``geobox`` from single-band files on the same pixel grid.

    ``sources`` are ``(file, its GeoBox)``; each is placed where it overlaps ``geobox`` (integer
    pixel offsets; files not overlapping are skipped).  Source paths are written relative to the
    VRT's folder, so the mosaic and its tiles can be moved together.
    """
    path = Path(path)
    height, width = geobox.shape
    root = ET.Element("VRTDataset", rasterXSize=str(width), rasterYSize=str(height))
    ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = geobox.crs.to_wkt()
    a = geobox.affine
    ET.SubElement(root, "GeoTransform").text = ", ".join(
        repr(float(v)) for v in (a.c, a.a, a.b, a.f, a.d, a.e)
    )
    band = ET.SubElement(root, "VRTRasterBand", dataType=_GDAL_TYPES[dtype], band="1")
    if nodata is not None:
        ET.SubElement(band, "NoDataValue").text = _fmt(nodata)
    if description:
        ET.SubElement(band, "Description").text = description
    inv = ~a
    for file, box in sources:
        col0, row0 = inv * (box.affine.c, box.affine.f)
        col0, row0 = round(col0), round(row0)
        th, tw = box.shape
        x0, y0 = max(col0, 0), max(row0, 0)
        x1, y1 = min(col0 + tw, width), min(row0 + th, height)
        if x1 <= x0 or y1 <= y0:
            continue
        src = ET.SubElement(band, "SimpleSource")
        rel = os.path.relpath(Path(file).resolve(), path.resolve().parent)
        ET.SubElement(src, "SourceFilename", relativeToVRT="1").text = rel
        ET.SubElement(src, "SourceBand").text = "1"
        ET.SubElement(
            src, "SrcRect", xOff=str(x0 - col0), yOff=str(y0 - row0), xSize=str(x1 - x0), ySize=str(y1 - y0)
        )
        ET.SubElement(src, "DstRect", xOff=str(x0), yOff=str(y0), xSize=str(x1 - x0), ySize=str(y1 - y0))
    ET.indent(root)
    atomic_write_text(path, ET.tostring(root, encoding="unicode") + "\n")
    return path


def region_mask(geometry_wgs84: BaseGeometry, geobox: GeoBox) -> np.ndarray:
    """Boolean ``(y, x)`` mask of pixels whose centre lies inside the geometry."""
    mask = rasterize(Geometry(geometry_wgs84, crs="EPSG:4326"), geobox, all_touched=False)
    return np.asarray(mask.values, dtype=bool)
