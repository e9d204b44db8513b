"""The demo's planted construction corridor is found by ``eqi assess`` (issue 9 acceptance).

A small SIMULATED archive (a 7 km box in Wenjiang) with the demo's corridor planted in 2023 →
``eqi run`` (NDVI, FVC) → ``eqi assess``.  The oracle is the simulator's own record of what it
planted (``reference/planted_corridor.geojson``: the pixels turned from vegetation to bare land)
and its truth land-cover maps — not the assessment's output.
"""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.features
import yaml
from rasterio.vrt import WarpedVRT
from shapely.geometry import box, mapping

from eqi.cli import main
from eqi.config import load_config
from eqi.demo.simulate import simulate_archive
from eqi.geo.regions import load_regions
from eqi.io.catalog.archive import index_archive
from eqi.pipeline.demo import DEMO_CORRIDOR_QUIET_M, DEMO_CORRIDOR_WIDTH_M, demo_corridor
from eqi.pipeline.run import run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def assessed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("corridor")
    (region,) = load_regions("sichuan:510115")
    c = region.geometry.centroid
    aoi = box(c.x - 0.035, c.y - 0.03, c.x + 0.035, c.y + 0.03)
    line = demo_corridor(aoi)
    sim = simulate_archive(aoi, tmp / "archive", region_name="corridor-test", years=(2022, 2023),
                           corridors=[line], corridor_width_m=DEMO_CORRIDOR_WIDTH_M, corridor_quiet_m=DEMO_CORRIDOR_QUIET_M,
                           margin_m=600)  # fmt: skip
    index_archive([sim.scenes_dir], tmp / "archive.parquet")
    (tmp / "aoi.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "box"}, "geometry": mapping(aoi)}]}))  # fmt: skip
    run_cfg = {"source": str(tmp / "archive.parquet"), "collections": ["landsat-c2-l2", "sentinel-2-l2a"],
               "aoi": str(tmp / "aoi.geojson"), "years": [2022, 2023], "season": "06-01/09-30", "crs": "albers-china",
               "resolution": 30, "products": ["ndvi", "fvc"], "out": str(tmp / "out"), "simulated": True}  # fmt: skip
    (tmp / "run.yaml").write_text(yaml.safe_dump(run_cfg))
    run(load_config(tmp / "run.yaml"), overwrite=True, progress=lambda _: None)
    project = {"name": "corridor", "type": "linear", "geometry": {"coordinates": [list(p) for p in line.coords]},
               "footprint_m": DEMO_CORRIDOR_WIDTH_M / 2, "rings_m": [300, 1000], "control": {"distance_m": [1500, 3000]},
               "before": 2022, "after": 2023, "chainage_km": 2}  # fmt: skip
    cfg = {"out": str(tmp / "out"), "simulated": True, "inputs": {"run": str(tmp / "out")}, "projects": [project]}
    (tmp / "assess.yaml").write_text(yaml.safe_dump(cfg))
    main(["assess", str(tmp / "assess.yaml")])
    return {"tmp": tmp, "folder": tmp / "out" / "projects" / "corridor", "sim": sim}


def test_disturbance_polygons_match_the_planted_footprint(assessed: dict) -> None:
    folder = assessed["folder"]
    dist = gpd.read_file(folder / "disturbance.gpkg", layer="disturbance")
    planted = gpd.read_file(assessed["sim"].root / "reference" / "planted_corridor.geojson")
    footprint = planted[planted["kind"] == "footprint"].to_crs(dist.crs).geometry.union_all()
    found = dist.geometry.union_all()
    iou = found.intersection(footprint).area / found.union(footprint).area
    assert iou >= 0.7, f"IoU {iou:.3f}"
    assert set(dist.loc[dist["area_km2"] > 0.05, "zone"]) == {"footprint"}
    assert {"area_km2", "centroid_lon", "centroid_lat", "dominant_transition"} <= set(dist.columns)


def test_footprint_fvc_drops_beyond_the_control_and_the_rings_do_not(assessed: dict) -> None:
    baci = pd.read_csv(assessed["folder"] / "baci.csv").set_index(["zone", "indicator"])
    fp = baci.loc[("footprint", "fvc")]
    assert fp["delta_impact_high"] < 0  # the impact zone's FVC difference: negative, CI excludes 0
    assert fp["baci_high"] < -0.2  # Δ_impact - Δ_control: a large loss
    # the rings beyond the 150 m corridor were not touched by the simulator: their BACI is small
    # next to the footprint's (within ±0.03 FVC: the edge pixels the corridor's mixed pixels reach)
    for ring in ("ring_0_300m", "ring_300_1000m"):
        r = baci.loc[(ring, "fvc")]
        assert abs(r["baci"]) < 0.03 and abs(r["baci"]) < 0.1 * abs(fp["baci"]), (ring, r.to_dict())


def test_acceptance_control_includes_zero_and_the_impact_does_not(assessed: dict) -> None:
    """Issue 9 acceptance: the impact zone's FVC difference is negative with an interval excluding
    0, the control's interval includes 0 (IoU: test_disturbance_polygons_match_the_planted_footprint)."""
    baci = pd.read_csv(assessed["folder"] / "baci.csv").set_index(["zone", "indicator"])
    fp = baci.loc[("footprint", "fvc")]
    assert fp["delta_impact"] < 0 and fp["delta_impact_low"] <= fp["delta_impact"] <= fp["delta_impact_high"] < 0, fp.to_dict()
    assert fp["delta_control_low"] <= 0 <= fp["delta_control_high"], fp.to_dict()


def test_control_is_unchanged_land_without_a_year_effect(assessed: dict) -> None:
    """Independent of the assessment: by the truth maps the control changed class on < 1 % of its
    pixels, and the unchanged truth pixels of the whole scene keep their FVC between the years
    (the simulator plants only land-cover changes, no scene-wide year effect): their mean ΔFVC,
    read from the run's FVC rasters, is ~0 and inside the control's interval."""
    folder = assessed["folder"]
    baci = pd.read_csv(folder / "baci.csv").set_index(["zone", "indicator"])
    ctl = baci.loc[("footprint", "fvc")]
    zones = gpd.read_file(folder / "zones.gpkg", layer="zones")
    area = next((assessed["tmp"] / "out" / "areas").iterdir())
    with rasterio.open(area / "2022" / "fvc.vrt") as a, rasterio.open(area / "2023" / "fvc.vrt") as b:
        d = b.read(1, masked=True).filled(np.nan) - a.read(1, masked=True).filled(np.nan)
        grid = (a.crs, a.transform, a.width, a.height)
    truth = []
    for year in (2022, 2023):
        with rasterio.open(assessed["sim"].truth_landcover_paths[year]) as src, WarpedVRT(
            src, crs=grid[0], transform=grid[1], width=grid[2], height=grid[3]
        ) as vrt:  # fmt: skip
            truth.append(vrt.read(1))
    unchanged = (truth[0] == truth[1]) & (truth[0] != 0)
    control = rasterio.features.geometry_mask(
        [zones.loc[zones["role"] == "control"].geometry.iloc[0]], (grid[3], grid[2]), grid[1], invert=True
    )  # fmt: skip
    assert (~unchanged[control & (truth[0] != 0)]).mean() < 0.01
    scene_shift = float(np.nanmean(d[unchanged]))
    assert abs(scene_shift) < 0.003, scene_shift
    assert ctl["delta_control_low"] - 0.002 <= scene_shift <= ctl["delta_control_high"] + 0.002
    assert abs(ctl["delta_control"]) < 0.02 * abs(ctl["delta_impact"])


def test_chainage_ranks_the_stretches_and_reruns_skip(assessed: dict, capsys) -> None:
    chain = pd.read_csv(assessed["folder"] / "chainage.csv")
    assert chain["rank"].min() == 1 and chain["disturbed_km2"].sum() > 0.3
    capsys.readouterr()
    main(["assess", str(assessed["tmp"] / "assess.yaml")])
    assert "skip corridor: done" in capsys.readouterr().out
