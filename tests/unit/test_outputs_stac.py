"""STAC items of finished tasks and the run catalog."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
from odc.geo.geobox import GeoBox
from odc.geo.xr import wrap_xr
from shapely.geometry import box

from eqi.io.atomic import TEMP_MARKER, sha256_file
from eqi.io.cog import write_cog
from eqi.io.qml import categorical_qml, write_qml
from eqi.io.stac import AssetInfo, product_item, update_catalog, write_item_atomic
from eqi.pipeline.tasks import TaskPaths, is_done, task_id

BBOX = [103.9, 30.5, 104.2, 30.8]


def _finish_task(out: Path, region: str, year: int, *, simulated: bool | None = True):
    tid = task_id(region, year, {"products": ["ndvi"]})
    paths = TaskPaths(out, region, year)
    gbox = GeoBox.from_bbox(
        (399_990, 3_399_990, 399_990 + 30 * 40, 3_399_990 + 30 * 30),
        crs="EPSG:32648",
        resolution=30,
    )
    data = np.linspace(-0.1, 0.9, 1200, dtype="float32").reshape(30, 40)
    data[0, 0] = np.nan
    tif = write_cog(
        wrap_xr(data, gbox),
        paths.product("ndvi"),
        nodata=np.nan,
        description="NDVI",
        kind="continuous",
        units="1",
    )
    qml = write_qml(tif, categorical_qml([(1, "#00ff00", "x")]))
    item = product_item(
        tid,
        region,
        year,
        box(*BBOX),
        BBOX,
        {
            "ndvi": AssetInfo(tif, "NDVI"),
            "ndvi_style": AssetInfo(qml, "QGIS style", roles=("style",), media_type="text/xml"),
        },
        {"eqi:products": ["ndvi"]},
        scene_ids=["S2B_48RUU_20200715_0_L2A", "LC08_129039_20200712"],
        method={"profile": "rsei-xu2013", "version": 1},
        config_hash="deadbeef",
        simulated=simulated,
    )
    write_item_atomic(item, paths.item)
    return tid, paths, data


def test_item_describes_assets_and_provenance(tmp_path: Path) -> None:
    tid, paths, data = _finish_task(tmp_path, "chengdu", 2020)
    raw = json.loads(paths.item.read_text(encoding="utf-8"))
    item = pystac.Item.from_dict(raw)
    assert item.id == tid
    props = item.properties
    assert props["eqi:task_id"] == tid and props["eqi:region"] == "chengdu"
    assert props["eqi:scene_ids"] == sorted(["S2B_48RUU_20200715_0_L2A", "LC08_129039_20200712"])
    assert props["eqi:method"] == {"profile": "rsei-xu2013", "version": 1}
    assert props["eqi:config_hash"] == "deadbeef" and props["eqi:simulated"] is True
    assert props["eqi:products"] == ["ndvi"]
    assert props["processing:software"]["eqi"]
    assert props["start_datetime"].startswith("2020-01-01") and props["datetime"] is None
    assert item.bbox == BBOX and item.geometry["type"] == "Polygon"

    ndvi = raw["assets"]["ndvi"]
    assert ndvi["href"] == "./ndvi.tif"  # relative to the item
    assert ndvi["type"] == pystac.MediaType.COG and ndvi["roles"] == ["data"]
    assert ndvi["proj:code"] == "EPSG:32648"
    assert ndvi["proj:shape"] == [30, 40]
    assert ndvi["proj:transform"] == [30.0, 0.0, 399990.0, 0.0, -30.0, 3400890.0]
    assert ndvi["file:size"] == paths.product("ndvi").stat().st_size
    assert ndvi["file:checksum"] == "1220" + sha256_file(paths.product("ndvi"))
    band = ndvi["raster:bands"][0]
    assert band["nodata"] == "nan" and band["data_type"] == "float32" and band["unit"] == "1"
    valid = data[np.isfinite(data)].astype(np.float64)
    assert band["statistics"]["minimum"] == pytest.approx(valid.min())
    assert band["statistics"]["mean"] == pytest.approx(valid.mean())
    assert raw["assets"]["ndvi_style"]["href"] == "./ndvi.qml"
    assert "raster:bands" not in raw["assets"]["ndvi_style"]
    assert any("projection" in e for e in raw["stac_extensions"])
    assert any("processing" in e for e in raw["stac_extensions"])
    assert not any(TEMP_MARKER in p.name for p in paths.dir.iterdir())


def test_written_item_is_the_done_marker(tmp_path: Path) -> None:
    tid, paths, _ = _finish_task(tmp_path, "chengdu", 2020)
    assert is_done(paths, tid, verify_checksum=True)
    paths.product("ndvi").unlink()
    assert not is_done(paths, tid)


def test_simulated_flag_is_absent_unless_given(tmp_path: Path) -> None:
    _, paths, _ = _finish_task(tmp_path, "r", 2021, simulated=None)
    assert "eqi:simulated" not in json.loads(paths.item.read_text())["properties"]


def test_missing_asset_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="ndvi"):
        product_item(
            "t", "r", 2020, box(*BBOX), BBOX, {"ndvi": AssetInfo(tmp_path / "nope.tif", "NDVI")}, {}
        )


def test_catalog_links_every_item_present(tmp_path: Path) -> None:
    _finish_task(tmp_path, "chengdu", 2020)
    _finish_task(tmp_path, "chengdu", 2021)
    _finish_task(tmp_path, "ya_an", 2020)
    cat_path = update_catalog(tmp_path, "Sichuan EQI outputs")
    raw = json.loads(cat_path.read_text(encoding="utf-8"))
    hrefs = [link["href"] for link in raw["links"] if link["rel"] == "item"]
    assert hrefs == [
        "./chengdu/2020/item.json",
        "./chengdu/2021/item.json",
        "./ya_an/2020/item.json",
    ]
    assert raw["type"] == "Catalog" and raw["title"] == "Sichuan EQI outputs"
    # pystac resolves the relative links to the real items
    catalog = pystac.Catalog.from_file(str(cat_path))
    assert sorted(i.id for i in catalog.get_items()) == sorted(
        [
            task_id("chengdu", 2020, {"products": ["ndvi"]}),
            task_id("chengdu", 2021, {"products": ["ndvi"]}),
            task_id("ya_an", 2020, {"products": ["ndvi"]}),
        ]
    )
    # rebuilding after a task disappears drops its link
    (tmp_path / "ya_an" / "2020" / "item.json").unlink()
    raw = json.loads(update_catalog(tmp_path, "x").read_text())
    assert len([link for link in raw["links"] if link["rel"] == "item"]) == 2


def test_custom_albers_grid_is_recorded_as_wkt2(tmp_path: Path) -> None:
    import rasterio
    from odc.geo import CRS

    albers = CRS(
        "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +x_0=0 +y_0=0 "
        "+ellps=WGS84 +units=m +no_defs"
    )
    gbox = GeoBox.from_bbox((-60_000, 3_300_000, -54_000, 3_306_000), crs=albers, resolution=30)
    tif = write_cog(
        wrap_xr(np.ones(gbox.shape, "uint8"), gbox),
        tmp_path / "lc.tif",
        nodata=0,
        description="lc",
        kind="categorical",
    )
    with rasterio.open(tif) as src:
        assert CRS(src.crs.to_wkt()) == albers
    item = product_item("t", "r", 2020, box(*BBOX), BBOX, {"lc": AssetInfo(tif, "LC")})
    asset = item.assets["lc"].to_dict()
    assert asset.get("proj:code") is None  # no EPSG code: the CRS is in proj:wkt2
    assert CRS(asset["proj:wkt2"]) == albers
    assert asset["proj:shape"] == [200, 200]


def test_catalog_has_a_collection_per_family_valid_offline_and_movable(tmp_path: Path) -> None:
    import shutil

    from stac_offline import validate_tree

    out = tmp_path / "out"
    _finish_task(out, "chengdu", 2020)
    _finish_task(out, "ya_an", 2021)
    cat_path = update_catalog(out, "outputs")
    # catalog + 2 task items + the vegetation collection (NDVI) + its 2 items
    assert validate_tree(cat_path) == 6
    collection = json.loads((out / "collections" / "vegetation" / "collection.json").read_text())
    assert collection["id"] == "eqi-vegetation" and collection["summaries"]["eqi:region"] == ["chengdu", "ya_an"]
    assert collection["extent"]["spatial"]["bbox"] == [BBOX]
    view = json.loads((out / "collections" / "vegetation" / "chengdu_2020_vegetation.json").read_text())
    assert view["assets"]["ndvi"]["href"] == "../../chengdu/2020/ndvi.tif"
    assert view["assets"]["ndvi"]["file:checksum"] == "1220" + sha256_file(out / "chengdu" / "2020" / "ndvi.tif")
    moved = shutil.copytree(out, tmp_path / "moved")
    shutil.rmtree(out)
    assert validate_tree(moved / "catalog.json") == 6
    catalog = pystac.Catalog.from_file(str(moved / "catalog.json"))
    hrefs = [a.get_absolute_href() for c in catalog.get_children() for i in c.get_items() for a in i.assets.values()]
    assert hrefs and all(Path(h).is_file() for h in hrefs)
    # a task that disappears takes its family items with it
    shutil.rmtree(moved / "ya_an")
    update_catalog(moved, "outputs")
    assert sorted(p.name for p in (moved / "collections" / "vegetation").iterdir()) == [
        "chengdu_2020_vegetation.json", "collection.json"]


def test_class_rasters_carry_the_classification_extension(tmp_path: Path) -> None:
    from eqi.io.qml import colormap_from_classes, names_from_classes

    classes = [(1, "#f2d16b", "耕地 Cropland"), (2, "#1e8c3a", "林地 Forest land")]
    gbox = GeoBox.from_bbox((399_990, 3_399_990, 401_190, 3_400_890), crs="EPSG:32648", resolution=30)
    tif = write_cog(wrap_xr(np.ones(gbox.shape, "uint8"), gbox), tmp_path / "landcover.tif", nodata=0,
                    description="lc", kind="categorical", colormap=colormap_from_classes(classes),
                    category_names=names_from_classes(classes))  # fmt: skip
    item = product_item("t", "r", 2020, box(*BBOX), BBOX, {"landcover": AssetInfo(tif, "LC")}).to_dict()
    assert item["assets"]["landcover"]["classification:classes"] == [
        {"value": 1, "description": "耕地 Cropland", "name": "cropland", "color_hint": "F2D16B"},
        {"value": 2, "description": "林地 Forest land", "name": "forest_land", "color_hint": "1E8C3A"},
    ]
    assert any("classification" in e for e in item["stac_extensions"])
