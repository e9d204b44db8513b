"""Output grids: one explicit GeoBox per region from its polygon, a CRS and a resolution.

Never let a loader pick "the most common CRS": a run names its CRS and resolution, and the grid is
snapped to whole multiples of the resolution so that grids of different runs align.
"""

from __future__ import annotations

from odc.geo import geom
from odc.geo.geobox import GeoBox
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.geometry.base import BaseGeometry

from eqi.errors import AOIError, ConfigError

__all__ = ["region_geobox", "parse_crs"]


def parse_crs(crs: str) -> CRS:
    """Parse a projected CRS (EPSG code, WKT, PROJ string or ``albers-china``) in metres.

    Raises :class:`ConfigError` for an unknown or a geographic (degrees) CRS.
    """
    from eqi.config import CRS_ALIASES

    try:
        parsed = CRS.from_user_input(CRS_ALIASES.get(crs, crs))
    except CRSError:
        raise ConfigError(
            f"unknown CRS '{crs}': use an EPSG code such as EPSG:32648, a PROJ string, "
            "or 'albers-china'"
        ) from None
    if parsed.is_geographic:
        raise ConfigError(
            f"CRS '{crs}' is geographic (degrees); give a projected CRS in metres, e.g. albers-china"
        )
    return parsed


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
