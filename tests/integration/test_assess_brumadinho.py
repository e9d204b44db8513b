"""A real event: the Brumadinho tailings-dam collapse (25 January 2019) assessed as a point
project on the Landsat 8 pair of 14 and 30 January 2019 (sample data, native 30 m).

How the test knows the mudflow path (the oracle, computed here independently of eqi): the largest
8-connected region (scikit-image) of pixels whose NDVI fell by more than 0.3 between the two
dates that reaches within 1.5 km of the dam; it runs ~8 km south-west down the Ferro-Carvão
valley, as in the published maps of the disaster.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.features
import yaml
from pyproj import Transformer
from rasterio.vrt import WarpedVRT
from skimage.measure import label

from eqi.cli import main

pytestmark = pytest.mark.integration

SCENES = {2018: "LC08_L2SP_218074_20190114_20200829_02_T1", 2019: "LC08_L2SP_218074_20190130_20200829_02_T1"}
# Córrego do Feijão dam I, approximate (Wikipedia, "Brumadinho dam disaster": 20°07′10″S 44°07′17″W).
# The "years" 2018/2019 stand for the two dates (before/after), which eqi handles as periods.
DAM = (-44.1214, -20.1194)
CONTROL = "POLYGON ((592500 -2231600, 595400 -2231600, 595400 -2228200, 592500 -2228200, 592500 -2231600))"


def _ndvi(stack: Path, out: Path, grid: tuple | None = None) -> np.ndarray:
    with rasterio.open(stack) as src:
        bands = list(src.descriptions)
        scale, offset = src.scales[0], src.offsets[0]
        red = src.read(bands.index("SR_B4") + 1, masked=True).astype("float64") * scale + offset
        nir = src.read(bands.index("SR_B5") + 1, masked=True).astype("float64") * scale + offset
        ndvi = ((nir - red) / (nir + red)).filled(np.nan).astype("float32")
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 1, "dtype": "float32",
                   "crs": src.crs, "transform": src.transform, "nodata": np.nan}  # fmt: skip
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(ndvi, 1)
    return ndvi


@pytest.fixture(scope="module")
def brumadinho(sample_data: Path, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("brumadinho")
    crops = sample_data / "landsat-c2l2-xlandsat-crops"
    for year, scene in SCENES.items():
        _ndvi(crops / scene / f"{scene}_stack.tif", tmp / f"ndvi_{year}.tif")
    project = {
        "name": "brumadinho", "type": "point", "approximate": True,
        "provenance": "dam coordinates from Wikipedia (Brumadinho dam disaster), approximate",
        "geometry": {"coordinates": list(DAM)}, "footprint_m": 300, "rings_m": [1000, 3000],
        "control": {"geometry": {"wkt": CONTROL, "crs": "EPSG:32623"}},
        "before": 2018, "after": 2019,
    }  # fmt: skip
    cfg = {"out": str(tmp / "out"), "inputs": {"files": {"ndvi": str(tmp / "ndvi_{year}.tif")}}, "projects": [project]}
    (tmp / "assess.yaml").write_text(yaml.safe_dump(cfg))
    main(["assess", str(tmp / "assess.yaml")])
    return {"tmp": tmp, "folder": tmp / "out" / "projects" / "brumadinho"}


def _mudflow(tmp: Path) -> tuple[np.ndarray, object, object]:
    """The oracle path on the before grid (see the module doc)."""
    with rasterio.open(tmp / "ndvi_2018.tif") as a, rasterio.open(tmp / "ndvi_2019.tif") as b:
        with WarpedVRT(b, crs=a.crs, transform=a.transform, width=a.width, height=a.height) as vb:
            drop = a.read(1) - vb.read(1, masked=True).filled(np.nan)
        transform, crs = a.transform, a.crs
    labels = label(np.nan_to_num(drop) > 0.3, connectivity=2)
    x, y = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(*DAM)
    rows, cols = np.indices(labels.shape)
    px = transform.c + (cols + 0.5) * transform.a
    py = transform.f + (rows + 0.5) * transform.e
    near = np.hypot(px - x, py - y) < 1500
    sizes = {i: (labels == i).sum() for i in np.unique(labels[near & (labels > 0)])}
    path = labels == max(sizes, key=sizes.get)
    return path, transform, crs


def test_disturbance_layer_covers_the_mudflow_path(brumadinho: dict) -> None:
    folder = brumadinho["folder"]
    path, transform, _ = _mudflow(brumadinho["tmp"])
    assert path.sum() * 900 / 1e6 > 2.0  # the path is a real, large feature (km²)
    dist = gpd.read_file(folder / "disturbance.gpkg", layer="disturbance")
    zones = gpd.read_file(folder / "zones.gpkg", layer="zones")
    assessed = rasterio.features.geometry_mask(
        zones.loc[zones["role"] != "control"].geometry, path.shape, transform, invert=True
    )  # fmt: skip
    covered = rasterio.features.geometry_mask(dist.geometry, path.shape, transform, invert=True)
    share = (covered & path & assessed).sum() / (path & assessed).sum()
    assert share >= 0.8, f"disturbance covers {share:.1%} of the mudflow path inside the zones"
    biggest = dist.sort_values("area_km2").iloc[-1]
    assert biggest["area_km2"] > 1.0 and biggest["ndvi_drop_mean"] > 0.3


def test_rings_lose_vegetation_and_the_control_does_not(brumadinho: dict) -> None:
    baci = pd.read_csv(brumadinho["folder"] / "baci.csv").set_index("zone")
    for zone in ("footprint", "ring_0_1000m", "ring_1000_3000m"):
        row = baci.loc[zone]
        assert row["indicator"] == "ndvi"
        assert row["delta_impact_high"] < 0, (zone, row.to_dict())  # a loss, CI excludes 0
        assert row["baci_high"] < 0, (zone, row.to_dict())
    ctl = baci.iloc[0]
    assert ctl["delta_control_low"] < 0 < ctl["delta_control_high"], ctl.to_dict()
