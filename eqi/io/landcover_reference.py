"""Read a land-cover product onto a run's grid, from a file or from STAC (I/O edge of land cover).

A reference is one of:

* a raster file (GeoTIFF/COG of e.g. ESA WorldCover, Esri LULC, CLCD);
* a STAC Item or ItemCollection JSON file whose items carry the product as an asset;
* a catalog (STAC API URL or stac-geoparquet archive) searched by the region's bbox, the year and a
  collection id.

All three go through one path: a list of pystac Items loaded with odc-stac onto the GeoBox with
``mode`` resampling (class rasters must not be interpolated), tiles of the product mosaicked.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import odc.stac
import pystac
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox
from shapely.geometry import box, mapping, shape

from eqi.errors import InputError, NoScenesError
from eqi.geo.footprint import footprint

__all__ = ["item_for_raster", "reference_items", "load_reference"]


def item_for_raster(path: Path, asset: str = "map", nodata: int | None = None) -> pystac.Item:
    """A minimal STAC item describing a local single-band raster (bbox, proj, nodata).

    ``nodata`` is the value recorded when the file declares none (default 0); pass the product's
    nodata code (``ProductMapping.nodata``, 255 for Dynamic World, whose label 0 is water) so that
    pixels outside the file are filled with it rather than with a class code.
    """
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise InputError(f"land-cover raster {path} has no CRS; assign one (gdal_edit.py -a_srs)")
            bounds, crs, shape_, transform = src.bounds, src.crs, src.shape, src.transform
            file_nodata, dtype = src.nodata, src.dtypes[0]
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot read land-cover raster {path}: {exc}") from None
    outline = footprint(tuple(bounds), crs.to_wkt())
    item = pystac.Item(
        id=path.stem,
        geometry=mapping(outline),
        bbox=list(outline.bounds),
        datetime=None,
        properties={"start_datetime": "1970-01-01T00:00:00Z", "end_datetime": "2100-01-01T00:00:00Z"},
    )
    extra = {
        "proj:code": crs.to_string() if crs.to_epsg() else None,
        "proj:wkt2": None if crs.to_epsg() else crs.to_wkt(),
        "proj:shape": list(shape_),
        "proj:transform": list(transform)[:6],
        "raster:bands": [{"nodata": _nodata(file_nodata, nodata), "data_type": dtype}],
    }
    item.add_asset(
        asset,
        pystac.Asset(href=str(path.resolve()), roles=["data"], extra_fields={k: v for k, v in extra.items() if v is not None}),
    )
    return item


def _nodata(file_nodata: float | None, default: int | None) -> float:
    if file_nodata is not None:
        return file_nodata
    return default if default is not None else 0


def reference_items(
    reference: str,
    *,
    year: int,
    bbox: tuple[float, float, float, float],
    collection: str | None,
    asset: str,
    nodata: int | None = None,
) -> list[pystac.Item]:
    """Items of a land-cover reference that intersect ``bbox`` (lon/lat).

    ``nodata``: recorded for a raster file that declares none (see :func:`item_for_raster`).
    """
    from eqi.io.catalog import load_items, open_catalog

    path = Path(reference)
    if "://" in reference or path.suffix == ".parquet":
        if not collection:
            raise InputError("landcover.collection is needed to search a catalog for the land-cover product")
        items = open_catalog(reference).search(bbox=bbox, datetime=str(year), collections=[collection])
    elif not path.is_file():
        raise InputError(f"land-cover reference {path} not found; set landcover.reference in the config")
    elif path.suffix.lower() == ".json":
        try:
            items = load_items(path)
        except Exception:  # a single Item rather than an ItemCollection
            items = [pystac.Item.from_file(str(path))]
    else:
        items = [item_for_raster(path, asset, nodata)]
    region = box(*bbox)
    hits = [i for i in items if i.geometry is None or shape(i.geometry).intersects(region)]
    if not hits:
        raise NoScenesError(f"the land-cover reference {reference} does not cover the region {bbox} in {year}")
    missing = [i.id for i in hits if asset not in i.assets]
    if missing:
        raise InputError(f"land-cover item(s) {', '.join(missing)} have no asset '{asset}' (set landcover.asset)")
    return hits


def load_reference(items: list[pystac.Item], geobox: GeoBox, asset: str) -> xr.DataArray:
    """Class codes on ``geobox`` (as stored; 0 where the product has no data).

    Tiles of the product are fused by odc-stac into one layer (first valid pixel wins).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # odc-stac: items without eo/raster metadata
        ds = odc.stac.load(
            items, bands=[asset], geobox=geobox, resampling="mode", groupby=lambda *_: "mosaic"
        )
    return ds[asset].isel(time=0, drop=True).compute()
