"""`eqi validate`, `eqi search`, `eqi aoi`, and RSEI's thermal rule through the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

pytestmark = pytest.mark.integration

S2_SCENE = "S2A_29RKH_20200219_0_L2A"


def eqi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eqi", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def s2_archive(sample_data: Path, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("s2")
    archive = tmp / "s2.parquet"
    res = eqi("archive", "index", str(sample_data / "sentinel2-l2a-29RKH-downsampled"), "--out", str(archive))
    assert res.returncode == 0, res.stderr
    aoi = tmp / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "Feature", "properties": {"name": "mauritania"}, "geometry": {
        "type": "Polygon", "coordinates": [[[-11.6, 24.6], [-11.3, 24.6], [-11.3, 24.9], [-11.6, 24.9], [-11.6, 24.6]]]}}))  # fmt: skip
    return {"archive": archive, "aoi": aoi, "tmp": tmp}


def _config(s2: dict, name: str, **extra: object) -> Path:
    import yaml

    cfg = {
        "source": str(s2["archive"]), "collections": ["sentinel-2-l2a"], "aoi": str(s2["aoi"]),
        "years": [2020], "season": "02-01/02-28", "crs": "EPSG:32629", "resolution": 200,
        "out": str(s2["tmp"] / name), **extra,
    }  # fmt: skip
    path = s2["tmp"] / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_validate_reports_grid_and_products(s2_archive: dict) -> None:
    res = eqi("validate", str(_config(s2_archive, "validate", products=["composite", "ndvi"])))
    assert res.returncode == 0, res.stderr
    assert "region mauritania: grid" in res.stdout and "ndvi" in res.stdout


def test_search_lists_and_saves_scenes(s2_archive: dict) -> None:
    saved = s2_archive["tmp"] / "found.json"
    res = eqi("search", str(_config(s2_archive, "search")), "--save", str(saved))
    assert res.returncode == 0, res.stderr
    assert S2_SCENE in res.stdout and "1 scene" in res.stdout
    assert [f["id"] for f in json.loads(saved.read_text())["features"]] == [S2_SCENE]


def test_sentinel2_rsei_without_thermal_names_the_options(s2_archive: dict) -> None:
    res = eqi("run", str(_config(s2_archive, "rsei4", products=["rsei"], rsei={"min_observations": 1})))
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr
    assert "Traceback" not in err and err.startswith("error:")
    for option in ("Landsat", "rsei3", "LST"):
        assert option in err, err
    assert not list((s2_archive["tmp"] / "rsei4").rglob("item.json"))


def test_sentinel2_three_component_rsei_when_asked_explicitly(s2_archive: dict) -> None:
    cfg = _config(s2_archive, "rsei3", products=["ndvi", "rsei", "rsei_grade"], rsei={"variant": "rsei3", "min_observations": 1})
    res = eqi("run", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    task = s2_archive["tmp"] / "rsei3" / "mauritania" / "2020"
    meta = json.loads((task / "metadata.json").read_text())["method"]["rsei"]
    assert meta["variant"] == "rsei3" and set(meta["loadings"]) == {"ndvi", "wet", "ndbsi"}
    with rasterio.open(task / "rsei.tif") as src:
        values = src.read(1)
    assert np.isfinite(values).sum() > 100


def test_aoi_library_commands(tmp_path: Path) -> None:
    res = eqi("aoi", "list", "--level", "county")
    assert res.returncode == 0 and len(res.stdout.strip().splitlines()) == 183
    res = eqi("aoi", "show", "sichuan:温江区")
    assert res.returncode == 0 and "wenjiang-510115" in res.stdout and "km2" in res.stdout
    out = tmp_path / "wenjiang.gpkg"
    res = eqi("aoi", "export", "sichuan:510115", "--out", str(out))
    assert res.returncode == 0, res.stderr
    import geopandas as gpd

    assert len(gpd.read_file(out)) == 1
    res = eqi("aoi", "show", "sichuan:atlantis")
    assert res.returncode == 2 and "atlantis" in res.stderr
