"""Output grids: a fixed tile grid in the run's CRS, and the GeoBoxes of tiles and regions on it.

Never let a loader pick "the most common CRS": a run names its CRS and resolution.  Pixel edges sit
on ``anchor + k * resolution`` (the anchor is the CRS origin by default, or the scenes' own pixel
edges on a native grid, e.g. 15 m mod 30 for Landsat in UTM), so two runs with the same CRS,
resolution and anchor share pixel edges and tiles.  Tiles are ``tile_px`` x ``tile_px`` pixels,
numbered ``(col, row)`` from the anchor: column ``i`` spans ``x = ax + i * T`` to ``ax + (i+1) * T``,
row ``j`` spans ``y = ay - j * T`` down to ``ay - (j+1) * T`` (``T = tile_px * resolution``).
Neighbouring runs therefore share tiles, and an area's tiles are the ones its geometry touches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from odc.geo import geom
from odc.geo.geobox import GeoBox
from pyproj import CRS
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from eqi.errors import AOIError
from eqi.geo.crs import parse_crs

__all__ = ["TileGrid", "TileId", "region_geobox"]


@dataclass(frozen=True, order=True)
class TileId:
    """Column and row of a tile on a :class:`TileGrid` (may be negative)."""

    col: int
    row: int

    def __str__(self) -> str:
        return f"x{self.col:+04d}y{self.row:+04d}"


@dataclass(frozen=True)
class TileGrid:
    """A fixed grid of square tiles.

    Parameters
    ----------
    crs
        Projected CRS text (EPSG code, PROJ string, WKT), metres.
    resolution
        Pixel size in metres.
    tile_px
        Tile width and height in pixels.
    anchor
        ``(x, y)`` of one pixel corner in CRS units; pixel edges are ``anchor + k * resolution``.
    """

    crs: str
    resolution: float
    tile_px: int = 1024
    anchor: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if self.resolution <= 0:
            raise AOIError(f"grid resolution must be positive, got {self.resolution}")
        if self.tile_px <= 0 or self.tile_px % 256:
            raise AOIError(f"tile size must be a positive multiple of 256 px, got {self.tile_px}")
        ax, ay = self.anchor
        object.__setattr__(
            self, "anchor", (math.fmod(ax, self.resolution), math.fmod(ay, self.resolution))
        )

    @property
    def parsed_crs(self) -> CRS:
        return parse_crs(self.crs)

    @property
    def tile_size_m(self) -> float:
        return self.tile_px * self.resolution

    def describe(self) -> dict[str, object]:
        """JSON-ready description (for ids and metadata)."""
        return {
            "crs": self.parsed_crs.to_wkt(),
            "resolution": self.resolution,
            "tile_px": self.tile_px,
            "anchor": [round(v, 9) for v in self.anchor],
        }

    def tile_geobox(self, tile: TileId) -> GeoBox:
        """The tile's GeoBox (``tile_px`` x ``tile_px``, north up)."""
        ax, ay = self.anchor
        size = self.tile_size_m
        x0 = ax + tile.col * size
        y0 = ay - tile.row * size
        transform = Affine(self.resolution, 0.0, x0, 0.0, -self.resolution, y0)
        return GeoBox((self.tile_px, self.tile_px), transform, self.parsed_crs)

    def _to_grid(self, geometry_wgs84: BaseGeometry) -> geom.Geometry:
        if geometry_wgs84.is_empty:
            raise AOIError("the region geometry is empty")
        return geom.Geometry(geometry_wgs84, crs="EPSG:4326").to_crs(self.parsed_crs)

    def tiles_for(self, geometry_wgs84: BaseGeometry) -> list[TileId]:
        """Tiles whose area intersects the geometry, in row-major order."""
        shape = self._to_grid(geometry_wgs84).geom
        ax, ay = self.anchor
        size = self.tile_size_m
        x0, y0, x1, y1 = shape.bounds
        c0, c1 = math.floor((x0 - ax) / size), math.ceil((x1 - ax) / size)
        r0, r1 = math.floor((ay - y1) / size), math.ceil((ay - y0) / size)
        prepared = shape
        out = []
        for row in range(r0, max(r1, r0 + 1)):
            for col in range(c0, max(c1, c0 + 1)):
                bx0, by1 = ax + col * size, ay - row * size
                if prepared.intersects(box(bx0, by1 - size, bx0 + size, by1)):
                    out.append(TileId(col, row))
        return out

    def region_geobox(self, geometry_wgs84: BaseGeometry) -> GeoBox:
        """GeoBox on this grid's pixels that covers the geometry (expanded to whole pixels)."""
        shape = self._to_grid(geometry_wgs84).geom
        res = self.resolution
        ax, ay = self.anchor
        x0, y0, x1, y1 = shape.bounds
        c0, c1 = math.floor((x0 - ax) / res), math.ceil((x1 - ax) / res)
        r0, r1 = math.floor((ay - y1) / res), math.ceil((ay - y0) / res)
        width, height = max(c1 - c0, 1), max(r1 - r0, 1)
        transform = Affine(res, 0.0, ax + c0 * res, 0.0, -res, ay - r0 * res)
        return GeoBox((height, width), transform, self.parsed_crs)


def region_geobox(geometry_wgs84: BaseGeometry, crs: str, resolution: float) -> GeoBox:
    """GeoBox covering ``geometry_wgs84`` in ``crs`` with square pixels of ``resolution`` metres.

    Pixel edges on whole multiples of ``resolution`` from the CRS origin (the default grid).
    """
    return TileGrid(crs, resolution).region_geobox(geometry_wgs84)
