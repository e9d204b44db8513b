"""Tiles as the unit of work, end to end on a real Landsat scene: shared tiles are computed once,
regions are mosaics of tiles, a new product is one registry entry."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from pyproj import Transformer
from shapely.geometry import box, mapping

from eqi.cli import main
from eqi.config import load_config
from eqi.pipeline import tile_stage
from eqi.pipeline.cluster import dask_context
from eqi.pipeline.run import run
from eqi.products import REGISTRY, Product, normalised_difference, register

pytestmark = pytest.mark.integration

SCENE = "LC08_L2SP_008059_20191201_20200825_02_T1"


@pytest.fixture(scope="module")
def scene(sample_data: Path, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("tiles")
    scene_dir = sample_data / "landsat-c2l2-downsampled-scenes" / SCENE
    archive = tmp / "archive.parquet"
    main(["archive", "index", str(scene_dir), "--out", str(archive)])
    with rasterio.open(scene_dir / f"{SCENE}_SR_B4.TIF") as src:
        crs, transform, shape = src.crs, src.transform, src.shape
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def lonlat_box(r0: float, c0: float, r1: float, c1: float):
        x0, y0 = rasterio.transform.xy(transform, shape[0] * r0, shape[1] * c0, offset="ul")
        x1, y1 = rasterio.transform.xy(transform, shape[0] * r1, shape[1] * c1, offset="ul")
        (lon0, lon1), (lat1, lat0) = to_ll.transform([x0, x1], [y0, y1])
        return box(min(lon0, lon1), min(lat0, lat1), max(lon0, lon1), max(lat0, lat1))

    west, east = lonlat_box(0.35, 0.30, 0.65, 0.50), lonlat_box(0.35, 0.50, 0.65, 0.70)
    east = east.difference(west)  # adjacent: they share a border, not area
    aoi = tmp / "two.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": name}, "geometry": mapping(geom)}
        for name, geom in (("west", west), ("east", east))
    ]}))  # fmt: skip
    return {"tmp": tmp, "archive": archive, "aoi": aoi, "crs": crs.to_string()}


def _config(scene: dict, out: Path, products: list[str], **extra) -> Path:
    data = {
        "source": str(scene["archive"]), "collections": ["landsat-c2-l2"], "aoi": str(scene["aoi"]),
        "years": [2019], "season": "11-01/12-31", "crs": scene["crs"], "resolution": 90,
        "tile_size": 512, "products": products, "out": str(out), **extra,
    }  # fmt: skip
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _count_composites(monkeypatch) -> Counter:
    """Counts, per tile origin, how often the tile stage composites it (a tile = one load)."""
    composited: Counter = Counter()
    original = tile_stage._composite

    def counting(plan, groups, geobox, bands, sensor, **kwargs):
        composited[(geobox.affine.c, geobox.affine.f)] += 1
        return original(plan, groups, geobox, bands, sensor, **kwargs)

    monkeypatch.setattr(tile_stage, "_composite", counting)
    return composited


def test_two_adjacent_regions_composite_each_shared_tile_once(scene: dict, monkeypatch) -> None:
    composited = _count_composites(monkeypatch)
    out = scene["tmp"] / "two"
    cfg = load_config(_config(scene, out, ["ndvi", "count"]))
    with dask_context(None, None):
        results = run(cfg)
    assert [r.status for r in results] == ["done", "done"]
    items = {r: json.loads((out / r / "2019" / "metadata.json").read_text()) for r in ("west", "east")}
    west_tiles, east_tiles = set(items["west"]["tiles"]), set(items["east"]["tiles"])
    assert west_tiles & east_tiles, "the test needs regions that share tiles"
    assert len(composited) == len(west_tiles | east_tiles)  # every tile of the area, nothing else
    assert set(composited.values()) == {1}  # each shared-border tile composited exactly once
    # each region's clipped COG is the area mosaic inside the region, nodata outside
    for region in ("west", "east"):
        with rasterio.open(out / region / "2019" / "ndvi.tif") as clip, \
             rasterio.open(out / region / "2019" / "ndvi.vrt") as mosaic:  # fmt: skip
            a, b = clip.read(1), mosaic.read(1)
            assert clip.transform == mosaic.transform
        inside = np.isfinite(a)
        assert inside.sum() > 1000 and np.array_equal(a[inside], b[inside])
        assert np.isfinite(b[~inside]).sum() > 0  # the mosaic goes on beyond the region


def test_a_new_product_is_one_registry_entry(scene: dict) -> None:
    """A toy normalised difference of SWIR1 and NIR, registered at run time, is written styled."""
    if "toy" not in REGISTRY:
        register(Product(
            "toy", "Toy index (SWIR1 - NIR) / (SWIR1 + NIR)", bands=("swir16", "nir"), ramp="dryness",
            display_range=(-0.6, 0.6), compute=lambda ctx: normalised_difference(ctx.band("swir16"), ctx.band("nir")),
        ))  # fmt: skip
    out = scene["tmp"] / "toy"
    main(["run", str(_config(scene, out, ["toy", "nir", "swir16"]))])
    task = out / "west" / "2019"
    with rasterio.open(task / "toy.tif") as src:
        toy = src.read(1)
        assert src.descriptions[0].startswith("Toy index") and src.tags()["EQI_PRODUCT"] == "toy"
    with rasterio.open(task / "nir.tif") as src:
        nir = src.read(1).astype(np.float64)
    with rasterio.open(task / "swir16.tif") as src:
        swir = src.read(1).astype(np.float64)
    expected = (swir - nir) / (swir + nir)  # the oracle: the formula on the written composites
    ok = np.isfinite(expected)
    assert ok.sum() > 1000
    np.testing.assert_allclose(toy[ok], expected[ok], rtol=0, atol=1e-6)
    assert np.all(np.isnan(toy[~ok]))
    qml = (task / "toy.qml").read_text()
    assert "<qgis" in qml and "colorrampshader" in qml.lower()
    item = json.loads((task / "item.json").read_text())
    assert "toy" in item["assets"] and "toy" in item["properties"]["eqi:products"]


def test_fitting_per_region_only_when_asked(scene: dict, monkeypatch) -> None:
    """fit_scope: region fits FVC for each region alone; the shared tiles are still composited once."""
    composited = _count_composites(monkeypatch)
    bounds = {}
    for scope in ("area", "region"):
        out = scene["tmp"] / f"scope-{scope}"
        with dask_context(None, None):
            run(load_config(_config(scene, out, ["fvc"], fit_scope=scope)))
        for region in ("west", "east"):
            meta = json.loads((out / region / "2019" / "metadata.json").read_text())["method"]["fvc"]
            bounds[(scope, region)] = (meta["ndvi_soil"], meta["ndvi_veg"])
            expected = ["west", "east"] if scope == "area" else [region]
            assert meta["scope"]["regions"] == expected
    assert bounds[("area", "west")] == bounds[("area", "east")]  # one model for the area
    assert bounds[("region", "west")] != bounds[("region", "east")]  # each region its own
    # each run has its own output folder (its own tile store); within a run a tile is composited once
    assert set(composited.values()) == {2}
