"""Bad input ends with exit code 2, one clear message, no traceback, and nothing half-written."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCENE = "LC08_L2SP_008059_20191201_20200825_02_T1"
S2_SCENE = "S2A_29RKH_20200219_0_L2A"


def eqi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eqi", *args], capture_output=True, text=True, timeout=600)


def _polygon_file(path: Path, coords: list[list[float]]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "aoi"}, "geometry": {"type": "Polygon", "coordinates": [coords]}}
    ]}))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def archive(sample_data: Path, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("errors")
    out = tmp / "archive.parquet"
    res = eqi("archive", "index", str(sample_data / "landsat-c2l2-downsampled-scenes" / SCENE), "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture()
def good_aoi(tmp_path: Path) -> Path:
    # inside the Colombian scene (≈0.4–2.5° N, 74–76° W)
    return _polygon_file(tmp_path / "good.geojson", [[-75.3, 1.2], [-75.0, 1.2], [-75.0, 1.5], [-75.3, 1.5], [-75.3, 1.2]])


def _tree_digest(root: Path) -> dict[str, str]:
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in {".eqi.lock", ".eqi-run.json", "eqi-failure.json"}  # run bookkeeping
    }


def _assert_clean_failure(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, f"exit {res.returncode}\nstdout:{res.stdout}\nstderr:{res.stderr}"
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    err = res.stderr.strip()
    assert err.startswith("error:"), err
    for needle in needles:
        assert needle.lower() in err.lower(), f"{needle!r} not in {err!r}"


def _run(archive: Path, aoi: Path | str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return eqi(
        "run", "--source", str(archive), "--collections", "landsat-c2-l2", "--aoi", str(aoi),
        "--year", "2019", "--season", "11-01/12-31", "--crs", "EPSG:32618", "--resolution", "900",
        "--products", "composite,count,ndvi", "--out", str(out), *extra,
    )  # fmt: skip


def test_missing_archive_file(tmp_path: Path, good_aoi: Path) -> None:
    res = _run(tmp_path / "nope.parquet", good_aoi, tmp_path / "out")
    _assert_clean_failure(res, "nope.parquet", "eqi archive index")
    assert not (tmp_path / "out" / "aoi").exists()


def test_aoi_touching_no_scene(archive: Path, tmp_path: Path) -> None:
    far = _polygon_file(tmp_path / "far.geojson", [[103.8, 30.6], [103.9, 30.6], [103.9, 30.7], [103.8, 30.7], [103.8, 30.6]])
    res = _run(archive, far, tmp_path / "out")
    _assert_clean_failure(res, "no landsat-c2-l2 scene touches")
    assert not list((tmp_path / "out").rglob("item.json"))
    assert not list((tmp_path / "out").rglob("*eqi-tmp*"))


def test_self_intersecting_polygon(archive: Path, tmp_path: Path) -> None:
    bowtie = _polygon_file(tmp_path / "bowtie.geojson", [[-75.3, 1.2], [-75.0, 1.5], [-75.0, 1.2], [-75.3, 1.5], [-75.3, 1.2]])
    _assert_clean_failure(_run(archive, bowtie, tmp_path / "out"), "self-intersect")


def test_empty_polygon(archive: Path, tmp_path: Path) -> None:
    path = tmp_path / "empty.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": []}}
    ]}))  # fmt: skip
    _assert_clean_failure(_run(archive, path, tmp_path / "out"), "empty")


def test_aoi_without_crs(archive: Path, tmp_path: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    shp = tmp_path / "nocrs.shp"
    gpd.GeoDataFrame({"name": ["x"]}, geometry=[box(-75.3, 1.2, -75.0, 1.5)]).to_file(shp)
    shp.with_suffix(".prj").unlink(missing_ok=True)
    _assert_clean_failure(_run(archive, shp, tmp_path / "out"), "crs")


def test_unknown_collection(archive: Path, tmp_path: Path, good_aoi: Path) -> None:
    res = eqi(
        "run", "--source", str(archive), "--collections", "landsat-c9-l9", "--aoi", str(good_aoi),
        "--year", "2019", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    _assert_clean_failure(res, "landsat-c9-l9")


def test_unknown_band(archive: Path, tmp_path: Path, good_aoi: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        f"source: {archive}\ncollections: [landsat-c2-l2]\naoi: {good_aoi}\nyears: [2019]\n"
        f"out: {tmp_path / 'out'}\nbands: [ultraviolet]\n"
    )
    _assert_clean_failure(eqi("run", str(cfg)), "ultraviolet")


def test_s2_item_with_unknown_offset(sample_data: Path, tmp_path: Path) -> None:
    scene = tmp_path / "scenes" / S2_SCENE
    shutil.copytree(sample_data / "sentinel2-l2a-29RKH-downsampled" / S2_SCENE, scene)
    item_path = scene / f"{S2_SCENE}.json"
    item = json.loads(item_path.read_text())
    for key in list(item["properties"]):
        if key.startswith("s2:") or key.startswith("earthsearch:"):
            del item["properties"][key]
    item_path.write_text(json.dumps(item))
    archive = tmp_path / "s2.parquet"
    assert eqi("archive", "index", str(tmp_path / "scenes"), "--out", str(archive)).returncode == 0
    aoi = _polygon_file(tmp_path / "s2.geojson", [[-11.6, 24.6], [-11.4, 24.6], [-11.4, 24.8], [-11.6, 24.8], [-11.6, 24.6]])
    res = eqi(
        "run", "--source", str(archive), "--collections", "sentinel-2-l2a", "--aoi", str(aoi),
        "--year", "2020", "--season", "02-01/02-28", "--crs", "EPSG:32629", "--resolution", "200",
        "--products", "ndvi", "--out", str(tmp_path / "out"),
    )  # fmt: skip
    _assert_clean_failure(res, S2_SCENE, "s2:processing_baseline", "--s2-boa-offset")
    assert not list((tmp_path / "out").rglob("item.json"))
    # stating the offset is the way out that the message names
    res = eqi(*res.args[3:], "--s2-boa-offset", "0")
    assert res.returncode == 0, res.stdout + res.stderr
    assert list((tmp_path / "out").rglob("ndvi.tif"))


def test_failed_rerun_leaves_earlier_outputs_untouched(sample_data: Path, tmp_path: Path, good_aoi: Path) -> None:
    scenes = tmp_path / "scenes"
    shutil.copytree(sample_data / "landsat-c2l2-downsampled-scenes" / SCENE, scenes / SCENE)
    archive = tmp_path / "mine.parquet"
    assert eqi("archive", "index", str(scenes), "--out", str(archive)).returncode == 0
    out = tmp_path / "out"
    assert _run(archive, good_aoi, out).returncode == 0
    before = _tree_digest(out)
    assert any(name.endswith("ndvi.tif") for name in before)
    # the delivered red band gets corrupted; recomputing must fail cleanly and change nothing
    red = scenes / SCENE / f"{SCENE}_SR_B4.TIF"
    red.write_bytes(red.read_bytes()[:4096])
    res = _run(archive, good_aoi, out, "--overwrite")
    _assert_clean_failure(res, "cannot read an input raster", "re-index")
    assert _tree_digest(out) == before


def test_rerun_reuses_saved_items_without_the_catalog(archive: Path, tmp_path: Path, good_aoi: Path) -> None:
    private = tmp_path / "copy.parquet"
    shutil.copy(archive, private)
    out = tmp_path / "out"
    assert _run(private, good_aoi, out).returncode == 0
    private.unlink()  # the catalog is gone; the saved items.json is enough to recompute
    res = _run(private, good_aoi, out, "--overwrite")
    assert res.returncode == 0, res.stdout + res.stderr


def test_unreachable_dask_scheduler(archive: Path, tmp_path: Path, good_aoi: Path) -> None:
    import socket

    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = _run(archive, good_aoi, tmp_path / "out", "--scheduler", f"tcp://127.0.0.1:{port}")
    _assert_clean_failure(res, "cannot reach the Dask scheduler")


def test_second_run_on_a_locked_output_folder_exits_75(archive: Path, tmp_path: Path, good_aoi: Path) -> None:
    from eqi.pipeline.lock import RunLock

    out = tmp_path / "out"
    out.mkdir()
    with RunLock(out):  # another run (this test process) holds the folder
        res = _run(archive, good_aoi, out)
    assert res.returncode == 75, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and res.stderr.startswith("error:")
    assert not list(out.rglob("*.tif"))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run", "--no-such-option"), "No such option: --no-such-option"),
        (("no-such-command",), "No such command 'no-such-command'"),
        (("run", "--products"), "'--products' requires an argument"),
    ],
)
def test_command_line_usage_errors_exit_2_without_traceback(args: tuple[str, ...], needle: str) -> None:
    # typer >= 0.2x raises the usage errors of its own copy of Click, not click.ClickException
    res = eqi(*args)
    assert res.returncode == 2, f"exit {res.returncode}\nstderr:{res.stderr}"
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    assert needle in res.stderr, res.stderr
