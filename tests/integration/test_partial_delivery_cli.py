"""``eqi archive index`` / ``search`` / ``run`` on partial deliveries of real Landsat crops.

Liverpool (2020-09-27) delivered as SR_B2-SR_B7 + ST_B10 (no SR_B1, no QA_PIXEL); Brumadinho
(2019-01-14) as SR_B2-SR_B7.  The NDVI oracle is computed here from the published
``*_stack.tif`` with the USGS scaling and valid range, independently of eqi.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

pytestmark = pytest.mark.integration

LIVERPOOL = "LC08_L2SP_204023_20200927_20201006_02_T1"
BRUMADINHO = "LC08_L2SP_218074_20190114_20200829_02_T1"


def eqi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eqi", *args], capture_output=True, text=True, timeout=600)


def _aoi(path: Path, west: float, south: float, east: float, north: float) -> Path:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "aoi"}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
    ]}))  # fmt: skip
    return path


def _in_range(dn: dict[str, np.ndarray], *bands: str) -> np.ndarray:
    """USGS valid range of C2 L2 SR DN, 7273-43636 (reflectance 0-1); DN 0 is fill."""
    return np.all([(dn[b] >= 7273) & (dn[b] <= 43636) for b in bands], axis=0)


def _clean_failure(res: subprocess.CompletedProcess, *needles: str) -> str:
    assert res.returncode == 2, f"exit {res.returncode}\nstdout:{res.stdout}\nstderr:{res.stderr}"
    assert "Traceback" not in res.stderr + res.stdout
    for needle in needles:
        assert needle in res.stderr, f"{needle!r} not in {res.stderr!r}"
    return res.stderr


@pytest.fixture(scope="module")
def liverpool(tmp_path_factory, xlandsat_delivery) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("liverpool")
    xlandsat_delivery(LIVERPOOL, root / "in", drop=("SR_B1",))
    res = eqi("archive", "index", str(root / "in"), "--out", str(root / "a.parquet"))
    assert res.returncode == 0, res.stderr
    return {"root": root, "archive": root / "a.parquet", "index_out": res.stdout,
            "aoi": _aoi(root / "aoi.geojson", -3.17, 53.455, -3.03, 53.51)}  # fmt: skip


def _run(case: dict[str, Path], out: str, *extra: str) -> subprocess.CompletedProcess:
    # no --collections: the archive's own collections are searched
    return eqi(
        "run", "--source", str(case["archive"]), "--aoi", str(case["aoi"]), "--year", "2020",
        "--crs", "EPSG:32630", "--resolution", "30", "--products", "ndvi",
        "--out", str(case["root"] / out), *extra,
    )  # fmt: skip


def test_index_prints_a_warning_naming_the_missing_bands(liverpool) -> None:
    assert "indexed 1 scene(s)" in liverpool["index_out"]
    assert f"warning: scene {LIVERPOOL} lacks SR_B1, QA_PIXEL" in liverpool["index_out"]


def test_search_lists_what_a_scene_lacks(liverpool) -> None:
    res = eqi("search", "--source", str(liverpool["archive"]), "--aoi", str(liverpool["aoi"]),
              "--year", "2020", "--no-cloud-mask")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert f"{LIVERPOOL}  (lacks SR_B1,QA_PIXEL)" in res.stdout


def test_run_refuses_a_scene_without_cloud_mask_naming_the_flag(liverpool) -> None:
    _clean_failure(_run(liverpool, "refused"), LIVERPOOL, "QA_PIXEL", "--no-cloud-mask")
    assert not (liverpool["root"] / "refused" / "aoi" / "2020" / "ndvi.tif").exists()


def test_run_with_no_cloud_mask_writes_ndvi_of_the_delivered_bands(liverpool, sample_data) -> None:
    res = _run(liverpool, "ok", "--no-cloud-mask")
    assert res.returncode == 0, res.stderr
    with rasterio.open(liverpool["root"] / "ok" / "aoi" / "2020" / "ndvi.tif") as out:
        ndvi, t = out.read(1), out.transform
    stack = sample_data / "landsat-c2l2-xlandsat-crops" / LIVERPOOL / f"{LIVERPOOL}_stack.tif"
    with rasterio.open(stack) as src:
        dn = {name: src.read(i + 1).astype(np.float64) for i, name in enumerate(src.descriptions)}
        st = src.transform
    red, nir = (dn[b] * 2.75e-5 - 0.2 for b in ("SR_B4", "SR_B5"))  # USGS C2 L2 scaling
    oracle = np.where(_in_range(dn, "SR_B4", "SR_B5"), (nir - red) / (nir + red), np.nan)
    rows, cols = np.nonzero(np.isfinite(ndvi))
    # the ~61 000-pixel AOI less the estuary and sea, whose NIR reflectance is negative there
    assert rows.size > 20_000
    x, y = t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e
    # each output pixel is a source pixel touching its centre (nearest resampling; a centre on a
    # pixel edge may take either neighbour)
    candidates = [
        oracle[np.floor((y + dy - st.f) / st.e).astype(int), np.floor((x + dx - st.c) / st.a).astype(int)]
        for dx in (-1e-6, 1e-6) for dy in (-1e-6, 1e-6)
    ]  # fmt: skip
    error = np.nanmin(np.abs(np.stack(candidates) - ndvi[rows, cols]), axis=0)
    assert float(np.max(error)) < 1e-5  # float32 output


def test_run_fails_naming_product_band_and_scene(tmp_path, xlandsat_delivery) -> None:
    xlandsat_delivery(BRUMADINHO, tmp_path / "in")  # SR_B2-SR_B7: no thermal band
    assert eqi("archive", "index", str(tmp_path / "in"), "--out", str(tmp_path / "b.parquet")).returncode == 0
    aoi = _aoi(tmp_path / "aoi.geojson", -44.18, -20.17, -44.11, -20.11)
    res = eqi(
        "run", "--source", str(tmp_path / "b.parquet"), "--aoi", str(aoi), "--year", "2019",
        "--season", "01-01/01-31", "--crs", "EPSG:32623", "--resolution", "30",
        "--products", "ndvi,lst", "--no-cloud-mask", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    err = _clean_failure(res, f"product 'lst' needs band lwir (ST_B10), which scene {BRUMADINHO} lacks")
    assert "drop 'lst' from --products" in err and "QA_PIXEL" not in err


def test_stac_api_without_collections_asks_for_them(tmp_path) -> None:
    aoi = _aoi(tmp_path / "aoi.geojson", -44.18, -20.17, -44.11, -20.11)
    res = eqi("run", "--source", "http://127.0.0.1:9/stac", "--aoi", str(aoi), "--year", "2019",
              "--out", str(tmp_path / "out"))  # fmt: skip
    _clean_failure(res, "STAC API", "--collections")
    assert not (tmp_path / "out").exists()


def test_a_run_on_the_scenes_own_grid_resamples_nothing(liverpool, sample_data) -> None:
    """UTM 30 m = the scene's grid: output pixels are the scene's pixels, NDVI equals the DNs'."""
    res = _run(liverpool, "native", "--no-cloud-mask")
    assert res.returncode == 0, res.stderr
    assert "native grid" in res.stdout
    task = liverpool["root"] / "native" / "aoi" / "2020"
    with rasterio.open(task / "ndvi.tif") as out:
        ndvi, t = out.read(1), out.transform
        tags = out.tags()
    stack = sample_data / "landsat-c2l2-xlandsat-crops" / LIVERPOOL / f"{LIVERPOOL}_stack.tif"
    with rasterio.open(stack) as src:
        dn = {name: src.read(i + 1).astype(np.float64) for i, name in enumerate(src.descriptions)}
        st = src.transform
    assert (t.c - st.c) % 30 == 0 and (t.f - st.f) % 30 == 0  # pixel edges on the scene's edges
    col0, row0 = round((t.c - st.c) / 30), round((t.f - st.f) / -30)
    red, nir = (dn[b] * 2.75e-5 - 0.2 for b in ("SR_B4", "SR_B5"))  # USGS C2 L2 scaling
    oracle = np.where(_in_range(dn, "SR_B4", "SR_B5"), (nir - red) / (nir + red), np.nan)
    window = oracle[row0 : row0 + ndvi.shape[0], col0 : col0 + ndvi.shape[1]]
    valid = np.isfinite(ndvi)
    assert valid.sum() > 20_000  # water: negative NIR reflectance, masked (valid range)
    np.testing.assert_allclose(ndvi[valid], window[valid], rtol=0, atol=1e-6)  # float32 rounding
    assert np.isnan(ndvi[np.isnan(window)]).all()  # out of the valid range -> nodata
    assert tags["EQI_CLOUD_MASK"].startswith("NOT APPLIED")  # this run had no QA_PIXEL
    item = json.loads((task / "item.json").read_text())
    assert item["properties"]["eqi:cloud_mask"].startswith("NOT APPLIED")


def test_one_scene_rsei_runs_with_default_settings(liverpool) -> None:
    """RSEI studies often use one clear scene: the minimum-observations rule must not empty it."""
    res = eqi(
        "run", "--source", str(liverpool["archive"]), "--aoi", str(liverpool["aoi"]), "--year", "2020",
        "--crs", "EPSG:32630", "--resolution", "30", "--products", "rsei,rsei_grade", "--no-cloud-mask",
        "--out", str(liverpool["root"] / "rsei1"),
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    task = liverpool["root"] / "rsei1" / "aoi" / "2020"
    with rasterio.open(task / "rsei.tif") as src:
        rsei = src.read(1)
    finite = rsei[np.isfinite(rsei)]
    assert finite.size > 5_000 and finite.min() >= 0 and finite.max() <= 1  # land of the AOI (water is masked)
    model = json.loads((task / "metadata.json").read_text())["method"]["rsei"]
    assert model["loadings"]["ndvi"] > 0 and model["loadings"]["ndbsi"] < 0


def test_a_minimum_observations_rule_that_empties_rsei_exits_2_naming_it(tmp_path, xlandsat_delivery) -> None:
    """Two Brumadinho scenes, every pixel observed twice: asking for 3 leaves nothing, and says so."""
    import yaml

    after = "LC08_L2SP_218074_20190130_20200829_02_T1"
    xlandsat_delivery(BRUMADINHO, tmp_path / "in")
    xlandsat_delivery(after, tmp_path / "in")
    assert eqi("archive", "index", str(tmp_path / "in"), "--out", str(tmp_path / "b.parquet")).returncode == 0
    config = tmp_path / "rsei3.yaml"
    config.write_text(yaml.safe_dump({
        "source": str(tmp_path / "b.parquet"), "aoi": str(_aoi(tmp_path / "aoi.geojson", -44.18, -20.17, -44.11, -20.11)),
        "years": [2019], "season": "01-01/01-31", "crs": "EPSG:32623", "resolution": 30,
        "products": ["rsei"], "require_mask": False, "out": str(tmp_path / "out"),
        "rsei": {"variant": "rsei3", "min_observations": 3},
    }))  # fmt: skip
    _clean_failure(eqi("run", str(config)), "rsei.min_observations = 3")
    assert not (tmp_path / "out" / "aoi" / "2019" / "rsei.tif").exists()
