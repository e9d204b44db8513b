"""Loading onto tiles vs onto a region's own grid: the same pixels, up to GDAL's warp approximation.

odc-loader warps each Dask chunk with ``rasterio.warp.reproject``, which uses GDAL's approximate
transformer (error at most 0.125 source px, interpolated along each chunk's rows).  Where the
chunks lie therefore decides the nearest source pixel of a destination pixel whose centre falls
within that error of a source pixel edge.  Tiles put chunk corners on tile corners, the pipeline
before tiles put them on the region's corner, so the demo composites of the two differ on about
0.2 % of the pixels (docs/architecture.md, "Reprojection and chunks").  This test shows that the
two loads differ only in that way: everywhere else both equal an exact nearest-neighbour oracle
(PROJ per pixel centre), and where they do not, the value is the source pixel across that edge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from shapely.geometry import box
from shapely.ops import transform as reproject_shape

from bench import fixtures
from eqi.geo.crs import ALBERS_CHINA
from eqi.geo.grid import TileGrid
from eqi.io.load import group_items, load_group

SIZE = 512  # scene pixels (30 m, UTM 48N)
EDGE = 0.02  # source px: a tie within this of a source pixel edge may go either way (measured <= 0.01)


def _scene(tmp_path: Path) -> tuple[np.ndarray, rasterio.Affine, str, object]:
    fixtures.landsat_scenes(1, SIZE, tmp_path)
    (item,) = fixtures.landsat_items(1, SIZE, tmp_path)
    with rasterio.open(item.assets["red"].href) as ds:
        return ds.read(1), ds.transform, ds.crs.to_wkt(), item


def _oracle(src: np.ndarray, src_transform: rasterio.Affine, src_crs: str, gbox) -> tuple[np.ndarray, ...]:
    """Exact nearest source pixel of every destination pixel centre, and each centre's source coords."""
    to_src = Transformer.from_crs(gbox.crs.to_wkt(), src_crs, always_xy=True)
    cols, rows = np.meshgrid(np.arange(gbox.shape.x) + 0.5, np.arange(gbox.shape.y) + 0.5)
    xs, ys = gbox.transform * (cols, rows)
    u, v = ~src_transform * to_src.transform(xs, ys)
    iu, iv = np.floor(u).astype(int), np.floor(v).astype(int)
    assert iu.min() >= 1 and iv.min() >= 1 and iu.max() < src.shape[1] - 1 and iv.max() < src.shape[0] - 1
    return src[iv, iu], u, v


def _across_edge(src: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """True where the value could be a source pixel on the other side of a nearby edge (within EDGE)."""
    iu, iv = np.floor(u).astype(int), np.floor(v).astype(int)
    near_u, near_v = np.abs(u - np.round(u)) < EDGE, np.abs(v - np.round(v)) < EDGE
    other_u = np.where(iu == np.round(u), iu - 1, iu + 1)
    other_v = np.where(iv == np.round(v), iv - 1, iv + 1)
    return np.stack([
        np.where(near_u, src[iv, other_u], -1),
        np.where(near_v, src[other_v, iu], -1),
        np.where(near_u & near_v, src[other_v, other_u], -1),
    ])


def test_tiled_and_region_loads_differ_only_at_warp_ties(tmp_path: Path) -> None:
    src, src_transform, src_crs, item = _scene(tmp_path)
    (group,) = group_items([item], ["red"])
    to_ll = Transformer.from_crs(src_crs, "EPSG:4326", always_xy=True).transform
    x0, y0 = src_transform.c, src_transform.f
    inner = box(x0 + 1500, y0 - SIZE * 30 + 1500, x0 + SIZE * 30 - 1500, y0 - 1500)  # inside the scene
    region = reproject_shape(to_ll, inner)
    grid = TileGrid(ALBERS_CHINA, 30.0, tile_px=256)
    region_box = grid.region_geobox(region)
    chunk = 128

    whole = load_group(group, region_box, chunk=chunk)["red"].values[0]
    tiled = np.zeros_like(whole)
    covered = np.zeros(whole.shape, dtype=bool)
    for tile in grid.tiles_for(region):
        tbox = grid.tile_geobox(tile)
        ox = round((tbox.transform.c - region_box.transform.c) / 30)
        oy = round((region_box.transform.f - tbox.transform.f) / 30)
        ys, xs = slice(max(oy, 0), min(oy + 256, whole.shape[0])), slice(max(ox, 0), min(ox + 256, whole.shape[1]))
        if ys.stop <= ys.start or xs.stop <= xs.start:
            continue
        part = load_group(group, tbox, chunk=chunk)["red"].values[0]
        tiled[ys, xs] = part[ys.start - oy : ys.stop - oy, xs.start - ox : xs.stop - ox]
        covered[ys, xs] = True
    assert covered.all()

    exact, u, v = _oracle(src, src_transform, src_crs, region_box)
    inside = ~np.isnan(u)
    alternatives = _across_edge(src, u, v)
    for name, loaded in (("region grid", whole), ("tiles", tiled)):
        wrong = inside & (loaded != exact)
        assert wrong.mean() < 0.02, name  # GDAL's approximation, not a shifted grid
        # every other value is the source pixel across an edge the centre lies within EDGE of
        assert (alternatives[:, wrong] == loaded[wrong]).any(axis=0).all(), name
    # the two loads differ only where at least one of them took the pixel across an edge
    differ = whole != tiled
    assert not (differ & (whole == exact) & (tiled == exact)).any()
