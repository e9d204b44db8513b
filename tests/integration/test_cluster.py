"""Tiles as Dask tasks on a real cluster: a `dask scheduler` and two `dask worker` processes on
127.0.0.1 (started here, stopped after) share a 4-tile run, and its outputs are byte-identical to
the run without a cluster."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pyproj import Transformer
from shapely.geometry import box, mapping

from eqi.cli import main

pytestmark = pytest.mark.integration

SCENE = "LC08_L2SP_008059_20191201_20200825_02_T1"
REPO = Path(__file__).resolve().parents[2]
# 512-px tiles at 450 m on EPSG:32618 have a corner at (460800, 230400), inside the scene
CORNER = (460800.0, 230400.0)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def four_tile_setup(sample_data: Path, tmp: Path) -> dict[str, Path]:
    """An archive of one Landsat scene and an AOI touching the four tiles around a tile corner."""
    archive = tmp / "archive.parquet"
    main(["archive", "index", str(sample_data / "landsat-c2l2-downsampled-scenes" / SCENE), "--out", str(archive)])
    to_ll = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True)
    x, y = CORNER
    (lon0, lon1), (lat0, lat1) = to_ll.transform([x - 20000, x + 20000], [y - 20000, y + 20000])
    aoi = tmp / "corner.geojson"
    aoi.write_text(json.dumps({"type": "Feature", "properties": {"name": "corner"},
                               "geometry": mapping(box(lon0, lat0, lon1, lat1))}))  # fmt: skip
    return {"archive": archive, "aoi": aoi}


def config_file(setup: dict[str, Path], out: Path, **extra) -> Path:
    data = {"source": str(setup["archive"]), "collections": ["landsat-c2-l2"], "aoi": str(setup["aoi"]),
            "years": [2019], "season": "11-01/12-31", "crs": "EPSG:32618", "resolution": 450,
            "tile_size": 512, "products": ["ndvi"], "out": str(out), **extra}  # fmt: skip
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def tif_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.tif"))}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dask scheduler` + workers w1, w2 (one thread each) on 127.0.0.1; yields the address."""
    tmp = tmp_path_factory.mktemp("cluster")
    dask_cli = str(Path(sys.executable).with_name("dask"))
    sched_file = tmp / "scheduler.json"
    procs: list[subprocess.Popen] = []
    logs = []

    def start(args: list[str], name: str) -> None:
        log = (tmp / f"{name}.log").open("w")
        logs.append(log)
        env = _env()
        if name == "scheduler":
            # tiles placed when submitted, by occupancy, and left there: with only 4 short tiles,
            # work stealing or root-task queuing can hand all of them to the worker that woke first
            env |= {"DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": "False",
                    "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "inf"}  # fmt: skip
        procs.append(subprocess.Popen([dask_cli, *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp))

    try:
        start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
               "--scheduler-file", str(sched_file)], "scheduler")  # fmt: skip
        deadline = time.monotonic() + 60
        while not sched_file.is_file():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                pytest.fail("dask scheduler did not start: " + (tmp / "scheduler.log").read_text())
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for name in ("w1", "w2"):
            start(["worker", "--scheduler-file", str(sched_file), "--name", name, "--nthreads", "1",
                   "--memory-limit", "2GiB", "--no-nanny", "--host", "127.0.0.1", "--no-dashboard"], name)  # fmt: skip
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=90)
            # both workers import the pipeline before the run: on a loaded machine a worker still
            # importing when the tiles arrive looks slow, and work stealing hands its tiles to the other
            client.run(importlib.import_module, "eqi.pipeline.tile_tasks")
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for log in logs:
            log.close()


def test_tiles_spread_over_two_workers_with_the_same_bytes(sample_data: Path, tmp_path: Path, cluster: str, capsys) -> None:
    setup = four_tile_setup(sample_data, tmp_path)
    # the local run in this process (threaded scheduler); the cluster run as a user types it, with
    # the scheduler from the config (dask.scheduler): the same command otherwise
    capsys.readouterr()
    main(["run", str(config_file(setup, tmp_path / "local"))])
    logs = {"local": capsys.readouterr().out}
    res = subprocess.run([sys.executable, "-m", "eqi", "run",
                          str(config_file(setup, tmp_path / "cluster", dask={"scheduler": cluster}))],
                         capture_output=True, text=True, timeout=600, env=_env())  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    logs["cluster"] = res.stdout
    outs = {mode: tif_bytes(tmp_path / mode) for mode in ("local", "cluster")}
    tiles = [p for p in outs["local"] if p.startswith("tiles/") and p.endswith("ndvi.tif")]
    assert len(tiles) == 4, sorted(outs["local"])
    ran_on = re.findall(r"tile (\S+) 2019: done on worker (\S+)", logs["cluster"])
    assert len(ran_on) == 4, logs["cluster"]
    assert {w for _, w in ran_on} == {"w1", "w2"}, ran_on
    assert "done on worker" not in logs["local"]
    assert outs["cluster"].keys() == outs["local"].keys()
    different = [k for k in outs["local"] if outs["local"][k] != outs["cluster"][k]]
    assert not different, different
