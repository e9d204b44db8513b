"""Output grids: one explicit GeoBox per region from its polygon, a CRS and a resolution.

Never let a loader pick "the most common CRS": a run names its CRS and resolution, and the grid is
snapped to whole multiples of the resolution so that grids of different runs align.
"""

from __future__ import annotations

from odc.geo import geom
from odc.geo.geobox import GeoBox
from shapely.geometry.base import BaseGeometry

from eqi.errors import AOIError
from eqi.geo.crs import parse_crs

__all__ = ["region_geobox"]


def region_geobox(geometry_wgs84: BaseGeometry, crs: str, resolution: float) -> GeoBox:
    """GeoBox covering ``geometry_wgs84`` in ``crs`` with square pixels of ``resolution``.

    Parameters
    ----------
    geometry_wgs84 : region polygon in lon/lat (EPSG:4326).
    crs : target CRS (projected, metres).
    resolution : pixel size in CRS units (metres).

    The bounds are expanded outwards to whole multiples of ``resolution`` (pixel edges on the
    CRS origin grid), so two runs with the same CRS and resolution share pixel edges.
    """
    if geometry_wgs84.is_empty:
        raise AOIError("the region geometry is empty")
    target = parse_crs(crs)
    poly = geom.Geometry(geometry_wgs84, crs="EPSG:4326").to_crs(target)
    gbox = GeoBox.from_geopolygon(poly, resolution=resolution, crs=target, tight=False)
    if gbox.shape[0] == 0 or gbox.shape[1] == 0:
        raise AOIError("the region is smaller than one pixel at this resolution")
    return gbox
