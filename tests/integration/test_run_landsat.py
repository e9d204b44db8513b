"""End to end through the CLI on a real Landsat C2 L2 scene: NDVI equals the hand computation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from shapely.geometry import box, mapping

pytestmark = pytest.mark.integration

SCENE = "LC08_L2SP_008059_20191201_20200825_02_T1"  # Colombia, 81 % cloud: real clouds and shadows


def eqi(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eqi", *args], capture_output=True, text=True, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def landsat_run(sample_data: Path, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("landsat-run")
    scene_dir = sample_data / "landsat-c2l2-downsampled-scenes" / SCENE
    archive = tmp / "archive.parquet"
    res = eqi("archive", "index", str(scene_dir), "--out", str(archive))
    assert res.returncode == 0, res.stderr
    with rasterio.open(scene_dir / f"{SCENE}_SR_B4.TIF") as src:
        crs, transform, shape = src.crs, src.transform, src.shape
    # an AOI in the middle of the scene, in lon/lat
    x0, y0 = rasterio.transform.xy(transform, shape[0] * 0.25, shape[1] * 0.25, offset="ul")
    x1, y1 = rasterio.transform.xy(transform, shape[0] * 0.75, shape[1] * 0.75, offset="ul")
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_ll.transform(x0, y1)
    lon1, lat1 = to_ll.transform(x1, y0)
    aoi = tmp / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "colombia-test"}, "geometry": mapping(box(lon0, lat0, lon1, lat1))}
    ]}))  # fmt: skip
    out = tmp / "out"
    res = eqi(
        "run", "--source", str(archive), "--collections", "landsat-c2-l2", "--aoi", str(aoi),
        "--year", "2019", "--season", "11-01/12-31", "--crs", crs.to_string(), "--resolution", "450",
        "--products", "composite,count,ndvi", "--out", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    return {"out": out, "scene_dir": scene_dir, "archive": archive, "aoi": aoi, "crs": crs}


def _source_at(path: Path, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Values of a single-band raster at map coordinates (the pixel containing each point)."""
    with rasterio.open(path) as src:
        data = src.read(1)
        inverse = ~src.transform
        cols_f = inverse.a * xs + inverse.b * ys + inverse.c
        rows_f = inverse.d * xs + inverse.e * ys + inverse.f
    rows, cols = np.floor(rows_f).astype(int), np.floor(cols_f).astype(int)
    inside = (rows >= 0) & (rows < data.shape[0]) & (cols >= 0) & (cols < data.shape[1])
    out = np.zeros(xs.shape, dtype=data.dtype)
    out[inside] = data[rows[inside], cols[inside]]
    return out


def test_ndvi_equals_hand_computation_and_clouds_are_nodata(landsat_run: dict) -> None:
    task_dir = landsat_run["out"] / "colombia-test" / "2019"
    with rasterio.open(task_dir / "ndvi.tif") as src:
        ndvi = src.read(1)
        rows, cols = np.indices(ndvi.shape)
        xs, ys = rasterio.transform.xy(src.transform, rows.ravel(), cols.ravel())
    xs, ys = np.asarray(xs), np.asarray(ys)
    scene = landsat_run["scene_dir"]
    red_dn = _source_at(scene / f"{SCENE}_SR_B4.TIF", xs, ys).reshape(ndvi.shape)
    nir_dn = _source_at(scene / f"{SCENE}_SR_B5.TIF", xs, ys).reshape(ndvi.shape)
    qa = _source_at(scene / f"{SCENE}_QA_PIXEL.TIF", xs, ys).reshape(ndvi.shape)
    red = red_dn * 2.75e-5 - 0.2
    nir = nir_dn * 2.75e-5 - 0.2
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = (nir - red) / (nir + red)
    flagged = (qa & 0b11111) != 0  # fill, dilated cloud, cirrus, cloud, shadow
    snow = (qa & (1 << 5)) != 0
    usable = ~flagged & ~snow & (red_dn > 0) & (nir_dn > 0)
    both = usable & np.isfinite(ndvi)
    assert both.sum() > 1000, "too few comparable pixels to mean anything"
    assert np.nanmax(np.abs(ndvi[both] - expected[both])) <= 1e-4
    cloud_or_shadow = (qa & ((1 << 3) | (1 << 4))) != 0
    assert cloud_or_shadow.sum() > 100
    assert np.all(np.isnan(ndvi[cloud_or_shadow])), "cloud/shadow pixels must be nodata"
    # every usable pixel inside the AOI got a value (nothing silently dropped)
    assert np.isfinite(ndvi[usable]).mean() > 0.99


def test_outputs_are_valid_cogs_with_provenance(landsat_run: dict) -> None:
    from rio_cogeo.cogeo import cog_validate

    task_dir = landsat_run["out"] / "colombia-test" / "2019"
    for name in ("red", "nir", "count", "ndvi"):
        path = task_dir / f"{name}.tif"
        valid, errors, _warnings = cog_validate(str(path))
        assert valid, errors
        assert (task_dir / f"{name}.qml").is_file()
        with rasterio.open(path) as src:
            assert src.count == 1 and src.crs is not None and src.descriptions[0]
            assert src.nodata is not None
            tags = src.tags()
            assert tags["EQI_PRODUCT"] == name and tags["EQI_SIMULATED"] == "false"
            assert "STATISTICS_MEAN" in src.tags(1)
    with rasterio.open(task_dir / "count.tif") as src:
        count = src.read(1)
        assert src.nodata == 65535
        assert set(np.unique(count[count != 65535])) <= {0, 1}
    item = json.loads((task_dir / "item.json").read_text())
    assert item["properties"]["eqi:scene_ids"] == [SCENE]
    assert item["properties"]["processing:software"]["eqi"]
    used = json.loads((task_dir / "items.json").read_text())
    assert [f["id"] for f in used["features"]] == [SCENE]
    assert (landsat_run["out"] / "catalog.json").is_file()


def test_rerun_skips_done_task_and_dry_run_reports_it(landsat_run: dict) -> None:
    task_dir = landsat_run["out"] / "colombia-test" / "2019"
    before = (task_dir / "ndvi.tif").stat().st_mtime_ns
    common = [
        "--source", str(landsat_run["archive"]), "--collections", "landsat-c2-l2",
        "--aoi", str(landsat_run["aoi"]), "--year", "2019", "--season", "11-01/12-31",
        "--crs", landsat_run["crs"].to_string(), "--resolution", "450",
        "--products", "composite,count,ndvi", "--out", str(landsat_run["out"]),
    ]  # fmt: skip
    res = eqi("run", *common, "--dry-run")
    assert res.returncode == 0 and "skip (done)" in res.stdout
    res = eqi("run", *common)
    assert res.returncode == 0 and "skip" in res.stdout
    assert (task_dir / "ndvi.tif").stat().st_mtime_ns == before


def test_output_bytes_do_not_depend_on_the_number_of_workers(landsat_run: dict, tmp_path: Path) -> None:
    import hashlib

    def digests(out: Path) -> dict[str, str]:
        task_dir = out / "colombia-test" / "2019"
        return {n: hashlib.sha256((task_dir / f"{n}.tif").read_bytes()).hexdigest() for n in ("red", "nir", "count", "ndvi")}

    reference = digests(landsat_run["out"])  # threaded scheduler
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        res = eqi(
            "run", "--source", str(landsat_run["archive"]), "--collections", "landsat-c2-l2",
            "--aoi", str(landsat_run["aoi"]), "--year", "2019", "--season", "11-01/12-31",
            "--crs", landsat_run["crs"].to_string(), "--resolution", "450",
            "--products", "composite,count,ndvi", "--out", str(out), "--workers", workers,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr
        assert digests(out) == reference, f"--workers {workers} changed the output bytes"


@pytest.fixture()
def dask_cluster(tmp_path: Path):
    """A real dask.distributed scheduler and two worker processes on 127.0.0.1, stopped after."""
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask_cli = str(Path(sys.executable).with_name("dask"))
    log = (tmp_path / "dask.log").open("w")
    procs = [subprocess.Popen(
        [dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=log, stderr=subprocess.STDOUT,
    )]  # fmt: skip
    try:
        procs.append(subprocess.Popen(
            [dask_cli, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard",
             "--host", "127.0.0.1", "--local-directory", str(tmp_path / "dask-worker")],
            stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        from distributed import Client

        deadline = time.monotonic() + 60
        with Client(address, timeout="30s") as client:
            while len(client.scheduler_info()["workers"]) < 2:
                if time.monotonic() > deadline:
                    pytest.fail("dask workers did not register within 60 s")
                time.sleep(0.2)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


def test_run_on_an_existing_dask_cluster(landsat_run: dict, dask_cluster: str, tmp_path: Path) -> None:
    import hashlib

    out = tmp_path / "cluster"
    res = eqi(
        "run", "--source", str(landsat_run["archive"]), "--collections", "landsat-c2-l2",
        "--aoi", str(landsat_run["aoi"]), "--year", "2019", "--season", "11-01/12-31",
        "--crs", landsat_run["crs"].to_string(), "--resolution", "450",
        "--products", "composite,count,ndvi", "--out", str(out), "--scheduler", dask_cluster,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("ndvi", "count", "red"):
        ours = hashlib.sha256((out / "colombia-test" / "2019" / f"{name}.tif").read_bytes()).hexdigest()
        local = hashlib.sha256((landsat_run["out"] / "colombia-test" / "2019" / f"{name}.tif").read_bytes()).hexdigest()
        assert ours == local, f"{name}.tif differs between the cluster and the local run"
