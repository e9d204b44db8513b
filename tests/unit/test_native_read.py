"""Bands on the output grid are read by windows (eqi.io.native_read); odc-stac is the oracle."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import odc.stac
import pystac
import pytest
import rasterio
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.errors import RasterioIOError

from eqi.io.catalog.archive import scan_scenes
from eqi.io.load import _native_sources, group_items, load_group
from eqi.io.native_read import native_band
from eqi.io.read_errors import failed_assets, forget

CRS = "EPSG:32648"
EXTENSIONS = ["https://stac-extensions.github.io/projection/v2.0.0/schema.json",
              "https://stac-extensions.github.io/raster/v1.1.0/schema.json"]  # fmt: skip



def _native(ds, name, plan, geobox, dates_per_chunk=1):
    """Band ``name`` of an odc-stac load as load_group reads it when it lies on ``geobox``'s grid."""
    sources = _native_sources(ds, name, plan, geobox)
    if sources is None:
        return None
    return native_band(ds[name].data, sources, fill=ds[name].attrs.get("nodata"), name=str(name),
                       dates_per_chunk=dates_per_chunk)

def _odc(items, bands, geobox) -> dict[str, np.ndarray]:
    ds = odc.stac.load(list(items), bands=list(bands), geobox=geobox, groupby="solar_day", chunks={})
    return {b: ds[b].values for b in bands}


def _native_layers(ds) -> dict[str, bool]:
    return {str(n): any(k.startswith("native-") for k in ds[n].data.dask.layers) for n in ds.data_vars}


def _item_grid(item: pystac.Item, asset: str) -> GeoBox:
    extra = item.assets[asset].extra_fields
    h, w = extra["proj:shape"]
    return GeoBox((h, w), Affine(*extra["proj:transform"][:6]), extra["proj:code"])


@pytest.mark.parametrize("folder", ["landsat-c2l2-downsampled-scenes", "sentinel2-l2a-29RKH-downsampled"])
def test_real_scenes_on_their_own_grid_load_as_odc_stac_loads_them(sample_data: Path, folder: str) -> None:
    items, _ = scan_scenes([sample_data / folder])
    item = items[0]
    grid = _item_grid(item, "red")
    # a grid reaching 37 px beyond the scene's top-left corner and ending inside it: fill and crop
    a = grid.affine
    geobox = GeoBox((grid.shape.y - 50, grid.shape.x - 20), a @ Affine.translation(-37, -37), grid.crs)
    (group,) = group_items([item], ["red", "nir"])
    loaded = load_group(group, geobox, chunk=128)
    native = _native_layers(loaded)
    assert native["red"] and native["nir"]
    # Landsat's QA_PIXEL is on the same grid; Sentinel-2's SCL (20 m) is not: odc-stac warps it
    assert native[group.mask_alias] is (folder.startswith("landsat"))
    expected = _odc(group.items, list(loaded.data_vars), geobox)
    for name, values in expected.items():
        np.testing.assert_array_equal(loaded[name].values, values, err_msg=name)
    # the scene on three dates, four dates per chunk: one read task per block where every band
    # is read by windows (Landsat), one chunk per date where odc-stac warps one (Sentinel-2's SCL)
    dates = []
    for k in range(3):
        copy = item.clone()
        copy.id, copy.datetime = f"{item.id}-{k}", item.datetime + timedelta(days=16 * k)
        dates.append(copy)
    (series,) = group_items(dates, ["red", "nir"])
    grouped = load_group(series, geobox, chunk=128, dates_per_chunk=4)
    landsat = folder.startswith("landsat")
    assert {grouped[n].data.chunks[0] for n in grouped.data_vars} == {(3,) if landsat else (1, 1, 1)}
    oracle = _odc(series.items, list(grouped.data_vars), geobox)
    for name, values in oracle.items():
        np.testing.assert_array_equal(grouped[name].values, values, err_msg=name)
    assert (loaded["red"].values[0, :37, :] == 0).all()  # beyond the scene: its nodata
    assert (loaded["red"].values[0, 37:, 37:] != 0).any()


def _write(path: Path, data: np.ndarray, transform: Affine, nodata: int | None) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=CRS, transform=transform, nodata=nodata, tiled=True,
                       blockxsize=16, blockysize=16) as dst:  # fmt: skip
        dst.write(data, 1)


def _item(item_id: str, when: str, path: Path, transform: Affine, shape: tuple[int, int], nodata: int) -> pystac.Item:
    geometry = {"type": "Polygon", "coordinates": [[[105.0, 30.0], [105.5, 30.0], [105.5, 30.5], [105.0, 30.5],
                                                    [105.0, 30.0]]]}  # fmt: skip
    item = pystac.Item(item_id, geometry, [105.0, 30.0, 105.5, 30.5], datetime.fromisoformat(when),
                       properties={"proj:code": CRS}, stac_extensions=EXTENSIONS)  # fmt: skip
    item.add_asset("red", pystac.Asset(str(path), extra_fields={
        "proj:shape": list(shape), "proj:transform": list(transform)[:6],
        "raster:bands": [{"nodata": nodata, "data_type": "uint16"}]}))  # fmt: skip
    return item


def test_items_of_one_solar_day_are_fused_and_source_nodata_becomes_the_fill(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    base = Affine(30, 0, 500000, 0, -30, 3400000)
    # scene A: 40 x 40 px at the grid origin, its files mark nodata 9 (declared: 0)
    a = rng.integers(1, 1000, (40, 40)).astype("uint16")
    a[12:20, 28:36] = 9  # a hole inside b's footprint
    _write(tmp_path / "a.tif", a, base, nodata=9)
    # scene B, 20 minutes later (same solar day), shifted by (12, 25) px: fills A's holes only
    b = rng.integers(1000, 2000, (40, 40)).astype("uint16")
    tb = base @ Affine.translation(25, 12)
    _write(tmp_path / "b.tif", b, tb, nodata=0)
    # scene C, another day, no nodata in the file
    c = rng.integers(1, 5, (30, 30)).astype("uint16")
    tc = base @ Affine.translation(-5, 3)
    _write(tmp_path / "c.tif", c, tc, nodata=None)
    items = [_item("a", "2021-07-01T03:40:00Z", tmp_path / "a.tif", base, (40, 40), 0),
             _item("b", "2021-07-01T04:00:00Z", tmp_path / "b.tif", tb, (40, 40), 0),
             _item("c", "2021-07-09T03:40:00Z", tmp_path / "c.tif", tc, (30, 30), 0),
             # scene D, a third day, beside the grid: its slice stays all fill
             _item("d", "2021-07-17T03:40:00Z", tmp_path / "c.tif", base @ Affine.translation(100, 0), (30, 30), 0)]  # fmt: skip
    geobox = GeoBox((64, 64), base, CRS)
    ds = odc.stac.load(items, bands=["red"], geobox=geobox, groupby="solar_day",
                       chunks={"time": 1, "x": 24, "y": 24}, debug=True)  # fmt: skip
    plan = ds.encoding.pop("debug")
    native = _native(ds, "red", plan, geobox)
    assert native is not None
    expected = ds["red"].values
    assert expected.shape[0] == 3 and (expected[2] == 0).all()  # a and b fused; d outside
    np.testing.assert_array_equal(native.compute(), expected)
    # several dates per read task: same pixels, chunks of 2 dates then 1
    paired = _native(ds, "red", plan, geobox, dates_per_chunk=2)
    assert paired is not None and paired.chunks[0] == (2, 1)
    np.testing.assert_array_equal(paired.compute(), expected)
    # the oracle is not trivial: b fills a's hole and what a does not cover, a keeps the rest
    assert (expected[0, 12:20, 28:36] >= 1000).all() and (expected[0, 20:40, 25:40] < 1000).all()
    assert (expected[0, 12:52, 40:64] >= 1000).all() and (expected[0, :12, 40:] == 0).all()


def test_a_grid_odc_loader_would_paste_is_read_by_windows_with_its_pixels(tmp_path: Path) -> None:
    base = Affine(30, 0, 500000, 0, -30, 3400000)
    _write(tmp_path / "a.tif", np.arange(1, 401, dtype="uint16").reshape(20, 20), base, nodata=0)
    items = [_item("a", "2021-07-01T03:40:00Z", tmp_path / "a.tif", base, (20, 20), 0)]
    geobox = GeoBox((16, 16), base @ Affine.translation(2.01, 3), CRS)  # 0.01 px off: odc-loader pastes
    ds = odc.stac.load(items, bands=["red"], geobox=geobox, groupby="solar_day", chunks={"x": 8, "y": 8}, debug=True)
    native = _native(ds, "red", ds.encoding.pop("debug"), geobox)
    assert native is not None
    np.testing.assert_array_equal(native.compute(), ds["red"].values)
    assert native[0, 0, 0].compute() == 3 * 20 + 2 + 1  # file row 3, column 2


def test_grids_that_are_not_the_output_grid_are_left_to_odc_stac(tmp_path: Path) -> None:
    base = Affine(30, 0, 500000, 0, -30, 3400000)
    data = np.arange(1, 401, dtype="uint16").reshape(20, 20)
    _write(tmp_path / "a.tif", data, base, nodata=0)
    items = [_item("a", "2021-07-01T03:40:00Z", tmp_path / "a.tif", base, (20, 20), 0)]
    for geobox in (GeoBox((20, 20), base @ Affine.translation(0.5, 0), CRS),  # half a pixel off
                   GeoBox((10, 10), Affine(60, 0, 500000, 0, -60, 3400000), CRS),  # another pixel size
                   GeoBox((20, 20), base, "EPSG:32649")):  # another CRS  # fmt: skip
        ds = odc.stac.load(items, bands=["red"], geobox=geobox, groupby="solar_day", chunks={}, debug=True)
        assert _native(ds, "red", ds.encoding.pop("debug"), geobox) is None


def test_a_file_whose_grid_is_not_its_declared_one_fails_naming_it(tmp_path: Path) -> None:
    base = Affine(30, 0, 500000, 0, -30, 3400000)
    _write(tmp_path / "a.tif", np.ones((20, 20), "uint16"), base @ Affine.translation(3, 0), nodata=0)
    items = [_item("a", "2021-07-01T03:40:00Z", tmp_path / "a.tif", base, (20, 20), 0)]  # declares `base`
    geobox = GeoBox((20, 20), base, CRS)
    ds = odc.stac.load(items, bands=["red"], geobox=geobox, groupby="solar_day", chunks={}, debug=True)
    native = _native(ds, "red", ds.encoding.pop("debug"), geobox)
    assert native is not None
    href = str(tmp_path / "a.tif")
    forget([href])
    with pytest.raises(RasterioIOError, match="not the one its STAC metadata declares"):
        native.compute()
    assert [f[:2] for f in failed_assets({href: ("a", "red")})] == [("a", "red")]


def test_kept_file_handles_follow_a_file_rewritten_in_place_and_are_released(tmp_path: Path) -> None:
    from eqi.io.native_read import release_handles

    base = Affine(30, 0, 500000, 0, -30, 3400000)
    path = tmp_path / "a.tif"
    first = np.arange(1, 401, dtype="uint16").reshape(20, 20)
    _write(path, first, base, nodata=0)
    items = [_item("a", "2021-07-01T03:40:00Z", path, base, (20, 20), 0)]
    geobox = GeoBox((20, 20), base, CRS)

    def read() -> np.ndarray:
        ds = odc.stac.load(items, bands=["red"], geobox=geobox, groupby="solar_day", chunks={"x": 8, "y": 8},
                           debug=True)  # fmt: skip
        native = _native(ds, "red", ds.encoding.pop("debug"), geobox)
        assert native is not None
        return native.compute(scheduler="threads", num_workers=2)[0]  # reads in Dask's pool threads

    release_handles()
    np.testing.assert_array_equal(read(), first)
    # the same path rewritten (a re-delivered scene): the kept handle must not serve the old pixels
    second = first[::-1].copy()
    path.unlink()
    _write(path, second, base, nodata=0)
    with rasterio.open(path) as src:  # oracle: the file itself
        np.testing.assert_array_equal(read(), src.read(1))
    # closed from this thread although the pool threads opened them
    assert release_handles() >= 1
    assert release_handles() == 0


def test_kept_files_stay_within_the_open_file_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from eqi.io import native_read

    base = Affine(30, 0, 500000, 0, -30, 3400000)
    items = []
    for k in range(12):
        path = tmp_path / f"d{k}.tif"
        _write(path, np.full((20, 20), k + 1, "uint16"), base, nodata=0)
        items.append(_item(f"d{k}", f"2021-07-{k + 1:02d}T03:40:00Z", path, base, (20, 20), 0))
    geobox = GeoBox((20, 20), base, CRS)
    ds = odc.stac.load(items, bands=["red"], geobox=geobox, groupby="solar_day", chunks={}, debug=True)
    native = _native(ds, "red", ds.encoding.pop("debug"), geobox)
    assert native is not None
    native_read.release_handles()
    monkeypatch.setattr(resource, "getrlimit", lambda _: (24, 24))  # `ulimit -n 24`
    values = native.compute(scheduler="sync")
    np.testing.assert_array_equal(values[:, 0, 0], np.arange(1, 13))  # every date read, in order
    kept = native_read._POOL.n_idle
    assert 1 <= kept <= 24 // 4
    monkeypatch.undo()
    native_read.release_handles()


def _gdal_cache_max_bytes() -> int:
    """GDAL's own block-cache limit (GDALGetCacheMax64) from the libgdal this process loaded."""
    import ctypes

    with open("/proc/self/maps") as maps:  # pyogrio and QGIS may have loaded libgdal copies of their own
        loaded = [line.split()[-1] for line in maps if "/libgdal" in line]
    wheel = str(Path(rasterio.__file__).parent.parent / "rasterio.libs")
    path = next((p for p in loaded if p.startswith(wheel)), loaded[0])
    lib = ctypes.CDLL(path)
    lib.GDALGetCacheMax64.restype = ctypes.c_int64
    return int(lib.GDALGetCacheMax64())


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads libgdal's path from /proc (Linux)")
def test_the_block_cache_cap_holds_process_wide_in_bytes() -> None:
    from rasterio.env import get_gdal_config, set_gdal_config

    from eqi.io.gdal import BLOCK_CACHE_BYTES, apply_gdal_options, gdal_options

    before = get_gdal_config("GDAL_CACHEMAX")
    try:
        apply_gdal_options({**gdal_options(), "GDAL_CACHEMAX": 48 * 2**20})
        assert _gdal_cache_max_bytes() == 48 * 2**20  # GDAL's value, outside odc-stac's environment too
        apply_gdal_options()
        assert _gdal_cache_max_bytes() == BLOCK_CACHE_BYTES == 2 * 2**20  # 2 MiB, not 2 bytes or 2 GiB
    finally:
        set_gdal_config("GDAL_CACHEMAX", before)


def test_the_tile_stage_closes_the_scene_files_it_kept_when_its_tiles_are_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eqi.geo.grid import TileId
    from eqi.io import native_read
    from eqi.pipeline import tile_tasks

    base = Affine(30, 0, 500000, 0, -30, 3400000)
    path = tmp_path / "d.tif"
    _write(path, np.full((20, 20), 7, "uint16"), base, nodata=0)
    item = _item("d", "2021-07-01T03:40:00Z", path, base, (20, 20), 0)
    geobox = GeoBox((20, 20), base, CRS)
    native_read.release_handles()

    def read_tile(plan, job, scenes, **_):  # a tile that reads its scene through the kept handles
        ds = odc.stac.load([item], bands=["red"], geobox=geobox, chunks={}, debug=True)
        assert int(_native(ds, "red", ds.encoding.pop("debug"), geobox).compute(scheduler="sync")[0, 0, 0]) == 7
        return job

    monkeypatch.setattr(tile_tasks, "execute_tile", read_tile)
    tiles = [tile_tasks.TileJob(2021, TileId(0, 0), "t0", {}), tile_tasks.TileJob(2021, TileId(1, 0), "t1", {})]
    jobs = tile_tasks.run_tile_jobs(None, tiles, {2021: None}, progress=lambda _: None)  # type: ignore[arg-type]
    assert next(jobs) is tiles[0] and native_read._POOL.n_idle == 1  # kept for the next tile
    assert list(jobs) == [tiles[1]]
    assert native_read._POOL.n_idle == 0  # closed once the tiles are done


def test_reading_threads_share_kept_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from eqi.io import native_read

    base = Affine(30, 0, 500000, 0, -30, 3400000)
    path = tmp_path / "s.tif"
    _write(path, np.full((20, 20), 3, "uint16"), base, nodata=0)
    item = _item("s", "2021-07-01T03:40:00Z", path, base, (20, 20), 0)
    geobox = GeoBox((20, 20), base, CRS)
    opened: list[str] = []
    real_open = native_read._open
    monkeypatch.setattr(native_read, "_open", lambda src: opened.append(src.path) or real_open(src))
    native_read.release_handles()

    def read() -> None:
        ds = odc.stac.load([item], bands=["red"], geobox=geobox, chunks={"x": 8, "y": 8}, debug=True)
        assert (_native(ds, "red", ds.encoding.pop("debug"), geobox).compute(scheduler="sync") == 3).all()

    for _ in range(2):  # two threads, one after the other: the second takes the first one's handle
        worker = threading.Thread(target=read)
        worker.start()
        worker.join()
    assert opened == [str(path)] and native_read._POOL.n_idle == 1
    assert native_read.release_handles() == 1
