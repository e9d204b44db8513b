"""Tile grid, VRT mosaics, and models fitted over many tiles (FVC histogram, RSEI parts)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
from odc.geo.xr import xr_coords
from shapely.geometry import box

from eqi.geo.crs import ALBERS_CHINA
from eqi.geo.grid import TileGrid, TileId
from eqi.io.cog import write_cog
from eqi.io.raster import open_raster, write_vrt
from eqi.resources import load_profile
from eqi.science import fvc as F
from eqi.science import rsei as R

RSEI = load_profile("rsei")


def test_tiles_are_anchored_on_the_grid_and_shared_by_neighbours() -> None:
    grid = TileGrid("EPSG:32648", 30.0, tile_px=512, anchor=(15.0, 15.0))
    tile = grid.tile_geobox(TileId(3, -2))
    a = tile.affine
    assert (a.c - 15.0) % 30 == 0 and (a.f - 15.0) % 30 == 0  # pixel corners on the anchor
    assert a.c == 15.0 + 3 * 512 * 30 and a.f == 15.0 + 2 * 512 * 30
    # two regions sharing a border share the tiles along it
    west = box(104.0, 30.0, 104.3, 30.2)
    east = box(104.3, 30.0, 104.6, 30.2)
    g = TileGrid(ALBERS_CHINA, 30.0, 512)
    tw, te = set(g.tiles_for(west)), set(g.tiles_for(east))
    both = set(g.tiles_for(west.union(east)))
    assert tw & te and both == tw | te
    # every tile listed intersects the region; a region's GeoBox sits on the same pixel grid
    gb = g.region_geobox(west)
    assert gb.affine.c % 30 == 0 and gb.affine.f % 30 == 0
    first = g.tile_geobox(min(tw))
    col, row = ~first.affine * (gb.affine.c, gb.affine.f)
    assert math.isclose(col, round(col), abs_tol=1e-9) and math.isclose(row, round(row), abs_tol=1e-9)


def test_region_geobox_matches_the_old_snapped_grid() -> None:
    """The region grid of the default anchor is odc-geo's snapped GeoBox (no pixel shift)."""
    from odc.geo import geom
    from odc.geo.geobox import GeoBox

    region = box(103.7, 30.6, 103.95, 30.8)
    ours = TileGrid(ALBERS_CHINA, 30.0).region_geobox(region)
    poly = geom.Geometry(region, crs="EPSG:4326").to_crs(ALBERS_CHINA)
    theirs = GeoBox.from_geopolygon(poly, resolution=30.0, crs=ALBERS_CHINA, tight=False)
    assert ours.shape == theirs.shape and ours.affine == theirs.affine


def _tile_array(grid: TileGrid, tile: TileId, value: float) -> xr.DataArray:
    gb = grid.tile_geobox(tile)
    data = np.full(gb.shape, value, dtype=np.float32)
    data[0, 0] = np.nan
    return xr.DataArray(data, dims=("y", "x"), coords=xr_coords(gb))


def test_vrt_mosaic_places_each_tile_at_its_pixels(tmp_path) -> None:
    grid = TileGrid("EPSG:32648", 30.0, tile_px=512)
    tiles = [TileId(0, 0), TileId(1, 0), TileId(1, 1)]  # (0, 1) is missing: nodata there
    sources = []
    for k, tile in enumerate(tiles):
        path = tmp_path / f"{tile}.tif"
        write_cog(_tile_array(grid, tile, k + 1.0), path, nodata=float("nan"), description="t", kind="continuous")
        sources.append((path, grid.tile_geobox(tile)))
    # a region window that starts inside tile (0, 0) and reaches into the other three
    region = grid.tile_geobox(TileId(0, 0))[100:900, 200:1000]
    vrt = write_vrt(tmp_path / "m.vrt", region, sources, dtype="float32", nodata=float("nan"))
    mosaic = open_raster(vrt).values
    assert mosaic.shape == (800, 800)
    assert np.all(mosaic[:412, :312] == 1.0)  # tile (0, 0)
    assert np.all(mosaic[:412, 312:] == 2.0)  # tile (1, 0)
    assert np.all(mosaic[412:, 312:][1:, 1:] == 3.0)  # tile (1, 1) (its first pixel is NaN)
    assert np.isnan(mosaic[412, 312])
    assert np.all(np.isnan(mosaic[412:, :312]))  # the missing tile reads as nodata
    with rasterio.open(vrt) as src:
        assert src.crs.to_epsg() == 32648 and src.transform == region.affine


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc (Linux)")
def test_a_mosaic_over_many_tiles_keeps_few_of_them_open(tmp_path) -> None:
    import os

    import dask
    from affine import Affine
    from odc.geo.geobox import GeoBox

    from eqi.io.gdal import VRT_SOURCES_OPEN, apply_gdal_options

    grid = TileGrid("EPSG:32648", 30.0, tile_px=512)
    tiles = [TileId(c, r) for r in range(4) for c in range(4)]  # 16 tiles
    sources = []
    for k, tile in enumerate(tiles):
        path = tmp_path / f"{tile}.tif"
        write_cog(_tile_array(grid, tile, k + 1.0), path, nodata=float("nan"), description="t",
                  kind="continuous", intermediate=True)  # fmt: skip
        sources.append((path, grid.tile_geobox(tile)))
    first = sources[0][1]
    left, top = min(g.affine.c for _, g in sources), max(g.affine.f for _, g in sources)
    region = GeoBox((2048, 2048), Affine(30.0, 0, left, 0, -30.0, top), first.crs)
    vrt = write_vrt(tmp_path / "m.vrt", region, sources, dtype="float32", nodata=float("nan"))
    apply_gdal_options()

    def tiles_open() -> int:  # the oracle: the process's open files
        names = [os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")]
        return sum(n in files for n in names)

    files = {os.path.realpath(p) for p, _ in sources}

    with dask.config.set(scheduler="sync"):
        mosaic = open_raster(vrt, chunk=512)
        values = mosaic.values  # every block of the mosaic, tile by tile
        assert np.nanmax(values) == 16.0 and np.nanmin(values) == 1.0
        assert 1 <= tiles_open() <= VRT_SOURCES_OPEN < len(tiles)


def test_fvc_bounds_from_summed_tile_histograms_match_numpy_percentiles() -> None:
    rng = np.random.default_rng(3)
    ndvi = rng.uniform(-0.2, 0.95, (300, 400)).astype(np.float32)
    water = np.zeros(ndvi.shape, bool)
    water[:20] = True
    ndvi[5, 5] = np.nan
    profile = load_profile("fvc")
    parts = [(ndvi[:150], water[:150]), (ndvi[150:, :200], water[150:, :200]), (ndvi[150:, 200:], water[150:, 200:])]
    counts = sum(F.ndvi_histogram(n, w) for n, w in parts)
    bounds = F.fvc_bounds_from_histogram(counts, params=profile)
    land = ndvi[~water & np.isfinite(ndvi)].astype(np.float64)
    lo, hi = np.percentile(land, [5, 95])  # the oracle: exact percentiles of all land pixels
    assert bounds.method == "percentile" and bounds.n_valid == land.size
    assert abs(bounds.ndvi_soil - lo) < 1e-4 and abs(bounds.ndvi_veg - hi) < 1e-4  # one bin width


def _components(arrays: dict[str, np.ndarray]) -> R.RseiComponents:
    layers = {n: xr.DataArray(arrays[n], dims=("y", "x")) for n in R.VARIANTS["rsei"]}
    usable = xr.DataArray(np.ones(arrays["ndvi"].shape, bool), dims=("y", "x"))
    return R.RseiComponents("rsei", layers, usable, "landsat8", "2020")


@pytest.mark.parametrize("normalisation", ["robust", "minmax"])
def test_rsei_fitted_on_tiles_equals_the_fit_on_the_whole_area(normalisation) -> None:
    """With the sample covering every pixel, splitting the area into tiles changes nothing."""
    rng = np.random.default_rng(7)
    g = rng.uniform(0, 1, (120, 90))

    def layer(a, b):
        return (a + b * g + 0.02 * rng.standard_normal(g.shape)).astype(np.float32)

    arrays = {"ndvi": layer(0.1, 0.7), "wet": layer(-0.15, 0.12), "lst": layer(305, -12), "ndbsi": layer(0.1, -0.4)}
    fit = functools.partial(R.fit_rsei_model, params=RSEI, sample_size=200_000, normalisation=normalisation)
    whole = fit([_components(arrays)])
    tiles = [
        _components({k: v[r0:r1, c0:c1] for k, v in arrays.items()})
        for r0, r1 in ((0, 50), (50, 120)) for c0, c1 in ((0, 40), (40, 90))
    ]  # fmt: skip
    calls: list[int] = []
    split = fit([tiles], after_part=lambda: calls.append(1))
    assert len(calls) == 3 * len(tiles)  # the hook runs after every tile of each of the 3 passes
    assert split == fit([tiles])  # and changes nothing
    np.testing.assert_allclose(split.eigenvector, whole.eigenvector, rtol=0, atol=1e-9)
    np.testing.assert_allclose(split.norm_min, whole.norm_min, rtol=0, atol=1e-9)
    np.testing.assert_allclose(split.norm_max, whole.norm_max, rtol=0, atol=1e-9)
    assert split.rsei0_min == pytest.approx(whole.rsei0_min, abs=1e-9)
    assert split.rsei0_max == pytest.approx(whole.rsei0_max, abs=1e-9)
    assert split.n_valid == whole.n_valid == (g.size,)


def test_rsei_sample_is_spread_over_tiles_by_their_valid_pixels() -> None:
    assert R._allocate(10, [0, 30, 70]) == [0, 3, 7]
    assert R._allocate(2, [1, 1, 1]) == [1, 1, 0]  # ties: the first parts, deterministically
    assert R._allocate(5, [1, 1, 1]) == [1, 1, 1]  # never more than a part has
    assert sum(R._allocate(100_000, [123_456, 7, 99_999, 0])) == 100_000
