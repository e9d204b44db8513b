"""Land-cover references from a file, a STAC JSON and a catalog give the same grid values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry
from shapely.geometry import box

from eqi.errors import InputError, NoScenesError
from eqi.io import landcover_tables
from eqi.io.catalog.archive import write_archive
from eqi.io.landcover_reference import item_for_raster, load_reference, reference_items
from eqi.science import landcover

BBOX = (6.65, 0.29, 6.73, 0.37)  # inside the São Tomé window (lon 6.64–6.74, lat 0.28–0.38)
MAP_2021 = "ESA_WorldCover_10m_2021_v200_N00E006_Map_crop.tif"


@pytest.fixture(scope="module")
def saotome(sample_data: Path) -> dict:
    folder = sample_data / "esa-worldcover-copdem-saotome"
    geobox = GeoBox.from_geopolygon(Geometry(box(*BBOX), crs="EPSG:4326").to_crs("EPSG:32632"), resolution=30)
    item = json.loads((sample_data / "stac-items" / "esa-worldcover-stactools" / "ESA_WorldCover_10m_2021_v200_N00E006.json").read_text())
    item["assets"] = {"map": {**item["assets"]["map"], "href": str(folder / MAP_2021)}}
    return {"raster": folder / MAP_2021, "item": item, "geobox": geobox}


def _load(reference: str, saotome: dict, **kw) -> np.ndarray:
    items = reference_items(reference, year=2021, bbox=BBOX, collection=kw.get("collection"), asset="map")
    return load_reference(items, saotome["geobox"], "map").values


def test_file_json_and_catalog_agree(saotome: dict, tmp_path: Path) -> None:
    from_file = _load(str(saotome["raster"]), saotome)
    collection = tmp_path / "items.json"
    collection.write_text(json.dumps({"type": "FeatureCollection", "features": [saotome["item"]]}))
    from_json = _load(str(collection), saotome)
    archive = write_archive([pystac.Item.from_dict(saotome["item"])], tmp_path / "wc.parquet")
    from_catalog = _load(str(archive), saotome, collection="esa-worldcover")
    np.testing.assert_array_equal(from_file, from_json)
    np.testing.assert_array_equal(from_file, from_catalog)
    assert set(np.unique(from_file)) <= {0, 10, 20, 30, 40, 50, 60, 80, 90}


def test_reclassified_shares_match_the_product(saotome: dict) -> None:
    codes = _load(str(saotome["raster"]), saotome)
    national = landcover.reclassify(
        xr.DataArray(codes, dims=("y", "x")), landcover_tables.load_mapping("esa-worldcover"), level=1,
        table=landcover_tables.load_class_table(),
    ).values
    valid = national != 0
    forest = (national[valid] == 2).mean()
    assert 0.7 < forest < 0.9  # the window is ~81 % tree cover (mode resampling to 30 m)


def test_reference_errors(saotome: dict, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        reference_items(str(tmp_path / "none.tif"), year=2021, bbox=BBOX, collection=None, asset="map")
    with pytest.raises(NoScenesError, match="does not cover"):
        reference_items(str(saotome["raster"]), year=2021, bbox=(100, 30, 101, 31), collection=None, asset="map")
    with pytest.raises(InputError, match="collection"):
        reference_items(str(tmp_path / "x.parquet"), year=2021, bbox=BBOX, collection=None, asset="map")


def test_tiles_of_a_product_are_mosaicked(saotome: dict, tmp_path: Path) -> None:
    import rasterio
    from rasterio.windows import Window

    whole = _load(str(saotome["raster"]), saotome)
    tiles = []
    with rasterio.open(saotome["raster"]) as src:
        half = src.width // 2
        for name, window in (("west", Window(0, 0, half + 30, src.height)), ("east", Window(half, 0, src.width - half, src.height))):
            profile = {**src.profile, "width": window.width, "height": window.height, "transform": src.window_transform(window)}
            path = tmp_path / f"{name}.tif"
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(src.read(1, window=window), 1)
            tiles.append(pystac.Item.from_dict(item_for_raster(path).to_dict()))
    collection = tmp_path / "tiles.json"
    collection.write_text(json.dumps({"type": "FeatureCollection", "features": [t.to_dict() for t in tiles]}))
    mosaic = _load(str(collection), saotome)
    # no hole at the seam; mode resampling sees only one tile's share of the seam pixels
    assert np.array_equal(mosaic == 0, whole == 0)
    assert (mosaic != whole).mean() < 1e-3
