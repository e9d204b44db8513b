"""The offline demo end to end: simulated archive -> index -> run, and what it leaves behind."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

pytestmark = pytest.mark.integration

REGION = "wenjiang-510115"


def eqi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eqi", *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    res = eqi("demo", "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SIMULATED" in res.stdout
    return out


def test_demo_leaves_archive_config_and_a_rerunnable_job(demo: Path) -> None:
    assert (demo / "archive.parquet").is_file()
    assert (demo / "demo.yaml").is_file()
    assert "SIMULATED" in (demo / "README-SIMULATED.txt").read_text()
    res = eqi("run", str(demo / "demo.yaml"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("skip") >= 2 and "0 done, " in res.stdout.splitlines()[-1]


def test_demo_ends_with_its_reports(demo: Path) -> None:
    """`eqi demo` (and so `make demo`) ends with the reports of the run (eqi report), banner on."""
    index = demo / "reports" / "index.zh.html"
    assert index.is_file()
    for year in (2022, 2023):
        html = (demo / "reports" / f"{REGION}_{year}.zh.html").read_text(encoding="utf-8")
        assert "模拟数据" in html and "温江区" in html
        assert (demo / "reports" / f"{REGION}_{year}.zh.pdf").stat().st_size > 10_000


def test_every_output_says_simulated(demo: Path) -> None:
    tifs = sorted(demo.glob(f"{REGION}/*/*.tif"))
    assert len(tifs) > 20
    for tif in tifs:
        with rasterio.open(tif) as src:
            assert src.tags()["EQI_SIMULATED"] == "true", tif
            assert "SIMULATED" in src.descriptions[0], tif
    for item in demo.glob(f"{REGION}/*/item.json"):
        assert json.loads(item.read_text())["properties"]["eqi:simulated"] is True


def test_land_cover_is_complete_with_map_accuracy(demo: Path) -> None:
    """Every pixel with a valid composite gets a class; accuracy is map accuracy with intervals."""
    for year in (2022, 2023):
        task = demo / REGION / str(year)
        report = json.loads((task / "landcover_accuracy.json").read_text())
        overall = report["map_accuracy"]["overall_accuracy"]
        assert overall["value"] >= 0.8 and 0 < overall["half_width"] < 0.1, overall
        assert all("users_accuracy" in c and "area_km2" in json.dumps(c) for c in report["map_accuracy"]["per_class"])
        assert (task / "landcover_accuracy.md").is_file()
        with rasterio.open(task / "landcover.tif") as src:
            classes = src.read(1)
            cmap = src.colormap(1)
            assert all(cmap[int(c)][:3] != (0, 0, 0) for c in np.unique(classes) if c)
        with rasterio.open(task / "red.tif") as src:
            valid = np.isfinite(src.read(1))
        level2 = {11, 12, 21, 22, 23, 24, 31, 32, 33, 41, 42, 43, 44, 45, 46, 51, 52, 53, 61, 62, 63, 64, 65, 66, 67}
        assert set(np.unique(classes)) <= {0} | level2  # CAS 二级: EI's habitat quality weights them
        coverage = (classes[valid] != 0).mean()
        assert coverage >= 0.99, f"{year}: land cover covers {coverage:.1%} of the valid pixels"
        with rasterio.open(task / "landcover_confidence.tif") as src:
            confidence = src.read(1)
        assert np.all((confidence[classes != 0] > 0) & (confidence[classes != 0] <= 1))


def test_no_clear_observation_is_nodata_and_offsets_are_harmonised(demo: Path) -> None:
    """The always-cloudy patch of 2022 is nodata; the 2023 S2 items (+1000 DN offset) agree with 2022."""
    ndvi = {}
    for year in (2022, 2023):
        task = demo / REGION / str(year)
        with rasterio.open(task / "count.tif") as src:
            count = src.read(1)
        with rasterio.open(task / "ndvi.tif") as src:
            ndvi[year] = src.read(1)
        inside = count != 65535
        no_obs = inside & (count == 0)
        assert np.all(np.isnan(ndvi[year][no_obs]))
        if year == 2022:
            assert no_obs.sum() > 10, "the simulated always-cloudy patch should leave nodata pixels"
    with rasterio.open(demo / REGION / "2022" / "red.tif") as src:
        red22 = src.read(1)
    with rasterio.open(demo / REGION / "2023" / "red.tif") as src:
        red23 = src.read(1)
    both = np.isfinite(red22) & np.isfinite(red23)
    # a mishandled BOA offset would shift 2023 reflectance by 0.1
    assert abs(float(np.median(red23[both] - red22[both]))) < 0.01


def test_rsei_and_fvc_are_fitted_once_for_the_area_and_period(demo: Path) -> None:
    """One RSEI model and one pair of FVC end-members serve both years (spec §5.1, §6.5)."""
    meta = {y: json.loads((demo / REGION / str(y) / "metadata.json").read_text())["method"] for y in (2022, 2023)}
    rsei = meta[2022]["rsei"]
    assert rsei["mode"] == "pooled" and rsei["years"] == ["2022", "2023"]
    assert rsei["scope"]["area"] == REGION and rsei["scope"]["years"] == [2022, 2023]
    assert rsei["loadings"]["ndvi"] > 0 and rsei["loadings"]["wet"] > 0
    assert meta[2023]["rsei"]["loadings"] == rsei["loadings"]  # the same model in both years
    assert meta[2023]["fvc"]["ndvi_soil"] == meta[2022]["fvc"]["ndvi_soil"]
    assert (demo / "areas" / REGION / "models" / "rsei-2022-2023.json").is_file()
    for year in (2022, 2023):
        with rasterio.open(demo / REGION / str(year) / "rsei.tif") as src:
            values = src.read(1)
        finite = values[np.isfinite(values)]
        assert finite.size > 1000 and finite.min() >= 0.0 and finite.max() <= 1.0


def test_sentinel2_rsei_with_landsat_lst_on_the_same_grid(demo: Path, tmp_path: Path) -> None:
    """Heat option 2 (spec §6.1): Sentinel-2 NDVI/WET/NDBSI with the Landsat ST_B10 composite."""
    import yaml

    config = yaml.safe_load((demo / "demo.yaml").read_text())
    config.update(
        source=str(demo / "archive.parquet"), out=str(tmp_path / "out"), years=[2023],
        products=["wet", "lst", "rsei"], rsei={"heat": "landsat-lst"},
    )  # fmt: skip
    config.pop("landcover")
    path = tmp_path / "option2.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    res = eqi("run", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    task = tmp_path / "out" / REGION / "2023"
    meta = json.loads((task / "metadata.json").read_text())["method"]["rsei"]
    assert meta["source_composite"] == "sentinel2" and "option 2" in meta["heat_source"]
    assert meta["loadings"]["ndvi"] > 0 and meta["loadings"]["wet"] > 0 and meta["loadings"]["lst"] < 0
    with rasterio.open(task / "rsei.tif") as src:
        assert np.isfinite(src.read(1)).sum() > 1000


def test_a_water_body_layer_splits_rivers_from_reservoirs(demo: Path, tmp_path: Path) -> None:
    """Level-2 water is rivers (41) by default; a supplied layer makes its pixels reservoirs (43)."""
    import yaml

    with rasterio.open(demo / REGION / "2022" / "red.tif") as src:
        profile = src.profile | {"dtype": "uint8", "nodata": 0, "count": 1, "driver": "GTiff"}
        width, height = src.width, src.height
    codes = np.zeros((height, width), dtype=np.uint8)
    codes[:, : width // 2] = 43  # a "reservoir inventory" over the western half
    layer = tmp_path / "reservoirs.tif"
    with rasterio.open(layer, "w", **profile) as dst:
        dst.write(codes, 1)
    config = yaml.safe_load((demo / "demo.yaml").read_text())
    config.update(source=str(demo / "archive.parquet"), out=str(tmp_path / "out"), years=[2022], products=["landcover"])
    config["landcover"].update(mode="reclassify", level=2, reference=str(demo / config["landcover"]["reference"]),
                               water_bodies=str(layer))  # fmt: skip
    path = tmp_path / "water.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    res = eqi("run", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    with rasterio.open(tmp_path / "out" / REGION / "2022" / "landcover.tif") as src:
        classes = src.read(1)
    west, east = classes[:, : width // 2], classes[:, width // 2 :]
    assert (west == 43).sum() > 0 and not np.isin(west, (41, 42)).any()
    assert (east == 41).sum() > 0 and not (east == 43).any()


def test_demo_ends_by_assessing_the_planted_corridor(demo: Path) -> None:
    """Issue 9 hook: `eqi demo` plants a corridor in 2023 and assesses it (eqi assess)."""
    folder = demo / "projects" / "demo-corridor"
    assert json.loads((folder / "item.json").read_text())["properties"]["eqi:simulated"] is True
    baci = {(r["zone"], r["indicator"]): r for r in csv.DictReader((folder / "baci.csv").open())}
    fp = {k: float(v) for k, v in baci[("footprint", "fvc")].items() if k.startswith(("delta", "baci"))}
    assert fp["baci_high"] < 0
    # issue 9 acceptance: the impact zone's FVC loss excludes 0, the control's interval includes it
    # (the simulator plants nothing else within 6 km of the corridor, and its seasons repeat)
    assert fp["delta_impact_high"] < 0 and fp["delta_control_low"] <= 0 <= fp["delta_control_high"], fp
    assert (demo / "archive" / "reference" / "planted_corridor.geojson").is_file()


def test_demo_computes_ei_and_eqi_for_its_county_with_simulated_tables(demo: Path) -> None:
    """`make demo` leaves the regional tables: EI and EQI of Wenjiang for both years with 95 %
    intervals, changes, transitions; the tabular inputs it simulated say so."""
    import pandas as pd

    assert "SIMULATED" in (demo / "tables" / "README-SIMULATED.txt").read_text()
    assert "SIMULATED" in (demo / "tables" / "pollution.csv").read_text(encoding="utf-8")
    folder = demo / "areas" / REGION / "tables"
    doc = json.loads((folder / "regions.json").read_text(encoding="utf-8"))
    assert doc["simulated"] is True and doc["years"] == [2022, 2023]
    rows = {(r["region"], r["year"]): r for r in doc["rows"]}
    for year in (2022, 2023):
        r = rows[(REGION, year)]
        assert r["evaluated"] and r["simulated"] is True
        assert r["ei_complete"], r["ei_missing"]  # with the simulated river layer and tables
        assert 0 < r["hq"] <= 100 and 0 < r["vci"] <= 100 and 0 <= r["pli"] <= 100
        assert r["wndi_source"] == "remote_sensing+table+vector"
        assert r["ei_ci_low"] <= r["ei_adjusted"] <= r["ei_ci_high"] and r["ei_grade"] in {"优", "良", "一般", "较差", "差"}
        assert r["eqi_complete"], r["eqi_missing"]
        assert r["eqi_ci_low"] <= r["eqi_adjusted"] <= r["eqi_ci_high"] and r["eqi_ci_high"] > r["eqi_ci_low"]
        assert r["eqi_grade"] in {"一类", "二类", "三类", "四类", "五类"}
        classes = sum(v for k, v in r.items() if k.startswith("landcover_class_") and k.endswith("_km2"))
        assert classes == pytest.approx(r["valid_fraction"] * r["region_km2"], rel=1e-9)
    assert any(c["region"] == REGION and c["delta_eqi_class"] and c["delta_ei_class"] for c in doc["changes"])
    assert any(t["region"] == REGION for t in doc["transitions"])
    en = pd.read_csv(folder / "regions-en.csv")
    assert {"EQI (0-100)", "EQI 95% interval low (0-100)", "simulated data"} <= set(en.columns)
