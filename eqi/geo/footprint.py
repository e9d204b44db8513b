"""The one footprint function: a projected raster's bounds as a WGS 84 polygon.

Used by the archive indexer (scene footprints read from the band files), the demo (footprints of
the simulated scenes) and the land-cover reference items, so every item eqi writes describes its
extent the same way.
"""

from __future__ import annotations

import math
from typing import Any

import shapely
from pyproj import Transformer
from shapely.geometry import Polygon, box
from shapely.geometry.polygon import orient

from eqi.errors import InputError

__all__ = ["footprint", "DENSIFY"]

DENSIFY = 10  # points per edge of the bounds before reprojection


def footprint(
    bounds: tuple[float, float, float, float], crs: Any, *, densify: int = DENSIFY
) -> Polygon:
    """``bounds`` (left, bottom, right, top in ``crs`` units) as a WGS 84 lon/lat polygon.

    Each edge is split into ``densify`` segments before reprojection, so a UTM square becomes a
    curved-edged quadrilateral in lon/lat; the exterior ring is counter-clockwise (RFC 7946).
    ``crs`` is anything pyproj accepts (WKT, "EPSG:32618", a CRS object).  Raises
    :class:`InputError` when the corners do not reproject to finite coordinates.
    """
    left, bottom, right, top = (float(v) for v in bounds)
    step = max(right - left, top - bottom) / max(int(densify), 1)
    outline = shapely.segmentize(box(left, bottom, right, top), max_segment_length=step)
    to_wgs84 = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lonlat = shapely.transform(outline, to_wgs84.transform, interleaved=False)
    if not all(map(math.isfinite, shapely.get_coordinates(lonlat).ravel())):
        raise InputError("footprint cannot be reprojected to WGS84")
    return orient(lonlat, sign=1.0)
