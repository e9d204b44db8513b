"""Faults: a STAC API (rustac serve) and an HTTP file server on 127.0.0.1, both behind a proxy
that fails a seeded 30 % of the requests and 30 % of the range reads (503 or a dropped
connection).  The run completes with the bytes of a clean run; a permanently missing asset fails
its tile's region only, naming item and asset (exit 1), and a rerun computes only that."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyproj import Transformer
from shapely.geometry import box, mapping
from shapely.ops import transform

from eqi.cli import main
from eqi.io.catalog.archive import index_archive
from eqi.io.catalog.archive.parquet import read_archive, write_archive
from eqi.io.read_errors import clear_http_cache
from eqi.pipeline import tile_tasks

pytestmark = pytest.mark.integration

SCENE = "LC08_L2SP_008059_20191201_20200825_02_T1"
REPO = Path(__file__).resolve().parents[2]
SERVERS = REPO / "tests" / "servers"
ASSETS = ("red", "nir", "qa_pixel")
# 512-px tiles at 450 m on EPSG:32618: tile columns split at x = 460800, rows at y = 230400
SPLIT_X, SPLIT_Y = 460800.0, 230400.0
TO_LL = Transformer.from_crs("EPSG:32618", "EPSG:4326", always_xy=True).transform


def _ll(x0: float, y0: float, x1: float, y1: float):
    return transform(TO_LL, box(x0, y0, x1, y1).segmentize(2000))


def _start(args: list[str], port_file: Path, log: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, *args, "--port-file", str(port_file)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 20
    while not port_file.is_file():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{args[0]} did not start: {log.read_text()}")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def _rustac() -> str:
    found = Path(sys.executable).with_name("rustac")
    path = str(found) if found.exists() else shutil.which("rustac")
    if path is None:
        pytest.skip("the rustac command (pip package rustac) is not installed")
    return path


@pytest.fixture(scope="module")
def servers(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Files (west and east copies of one scene's bands) and their items, served over HTTP."""
    tmp = tmp_path_factory.mktemp("faults")
    procs: list[subprocess.Popen] = []
    try:
        root = tmp / "files"
        local = tmp / "local.parquet"
        index_archive([sample_data / "landsat-c2l2-downsampled-scenes" / SCENE], local)
        (scene,) = read_archive(local)
        files_proc, files_port = _start([str(SERVERS / "range_file_server.py"), "--root", str(root)],
                                        tmp / "files.port", tmp / "files.log")  # fmt: skip
        procs.append(files_proc)
        fproxy, fproxy_port = _start([str(SERVERS / "flaky_proxy.py"), "--upstream", f"http://127.0.0.1:{files_port}",
                                      "--seed", "7"], tmp / "fproxy.port", tmp / "fproxy.log")  # fmt: skip
        procs.append(fproxy)
        x0, y0, x1, y1 = 378285.0, 43485.0, 606007.0, 275715.0  # the scene's extent
        items = []
        halves = {"w": (x0, y0, SPLIT_X - 5000, y1), "e": (SPLIT_X + 5000, y0, x1, y1)}
        for half, bounds in halves.items():
            item = scene.clone()
            item.id = f"{SCENE}_{half}"
            geom = _ll(*bounds).intersection(_ll(x0, y0, x1, y1))
            item.geometry, item.bbox = mapping(geom), list(geom.bounds)
            (root / half).mkdir(parents=True)
            for key in list(item.assets):
                if key not in ASSETS:
                    del item.assets[key]
                    continue
                name = Path(item.assets[key].href).name
                shutil.copyfile(item.assets[key].href, root / half / name)
                item.assets[key].href = f"http://127.0.0.1:{fproxy_port}/{half}/{name}"
            items.append(item)
        served = write_archive(items, tmp / "served.parquet")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            api_port = sock.getsockname()[1]
        aproxy, aproxy_port = _start([str(SERVERS / "flaky_proxy.py"), "--upstream", f"http://127.0.0.1:{api_port}",
                                      "--seed", "3"], tmp / "aproxy.port", tmp / "aproxy.log")  # fmt: skip
        procs.append(aproxy)
        # the API's links (search pages) name the proxy, so every request goes through it
        api = subprocess.Popen([_rustac(), "serve", "--use-duckdb", "false", "--addr", f"http://127.0.0.1:{aproxy_port}",
                                "--bind", f"127.0.0.1:{api_port}", str(served)],
                               stdout=(tmp / "api.log").open("w"), stderr=subprocess.STDOUT)  # fmt: skip
        procs.append(api)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}", timeout=1):
                    break
            except OSError:
                if api.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("rustac serve did not start: " + (tmp / "api.log").read_text())
                time.sleep(0.1)
        aoi = tmp / "two.geojson"
        regions = {"west": _ll(SPLIT_X - 40000, SPLIT_Y - 10000, SPLIT_X - 10000, SPLIT_Y + 10000),
                   "east": _ll(SPLIT_X + 10000, SPLIT_Y - 10000, SPLIT_X + 40000, SPLIT_Y + 10000)}  # fmt: skip
        aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"name": n}, "geometry": mapping(g)} for n, g in regions.items()]}))  # fmt: skip
        yield {"tmp": tmp, "root": root, "aoi": aoi, "api": f"http://127.0.0.1:{aproxy_port}",
               "proxies": [f"http://127.0.0.1:{aproxy_port}", f"http://127.0.0.1:{fproxy_port}"],
               "east": f"{SCENE}_e"}  # fmt: skip
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _faults(servers: dict, share: float) -> list[dict]:
    stats = []
    for url in servers["proxies"]:
        with urllib.request.urlopen(f"{url}/_proxy_set?fail={share}&fail_ranges={share}", timeout=5):
            pass
        with urllib.request.urlopen(f"{url}/_proxy_stats", timeout=5) as answer:
            stats.append(json.loads(answer.read()))
    return stats


def _args(servers: dict, out: Path) -> list[str]:
    return ["run", "--source", servers["api"], "--collections", "landsat-c2-l2", "--aoi", str(servers["aoi"]),
            "--year", "2019", "--season", "11-01/12-31", "--crs", "EPSG:32618", "--resolution", "450",
            "--products", "ndvi", "--out", str(out)]  # fmt: skip


def _run(servers: dict, out: Path, capsys=None) -> tuple[int, str]:
    args = _args(servers, out)
    if capsys is not None:
        capsys.readouterr()
    clear_http_cache()  # GDAL's cache of this test process: every run reads through the servers
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    if capsys is None:
        return code, ""
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _tifs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.tif"))}


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.05")  # GDAL's own retries of each request
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "6")
    monkeypatch.setattr(tile_tasks, "RETRY_BACKOFF", 0.1)  # eqi's retries of a tile


@pytest.fixture(scope="module")
def clean(servers: dict) -> dict[str, bytes]:
    """The COGs of a run without faults, through the same servers and URLs."""
    _faults(servers, 0.0)
    code, _ = _run(servers, servers["tmp"] / "clean")
    assert code == 0
    found = _tifs(servers["tmp"] / "clean")
    assert {k for k in found if k.endswith("ndvi.tif")} >= {"west/2019/ndvi.tif", "east/2019/ndvi.tif"}
    return found


def test_flaky_servers_give_the_bytes_of_a_clean_run(servers: dict, clean: dict, tmp_path: Path, capsys,
                                                     quick_retries) -> None:  # fmt: skip
    before = _faults(servers, 0.3)
    code, log = _run(servers, tmp_path / "flaky", capsys)
    after = _faults(servers, 0.0)
    assert code == 0, log
    failed = [a["answered_503"] + a["dropped"] - b["answered_503"] - b["dropped"] for a, b in zip(after, before, strict=True)]
    assert all(n > 0 for n in failed), (before, after, log)  # both the API and the files really failed
    assert _tifs(tmp_path / "flaky") == clean


def test_a_missing_asset_fails_its_task_only_and_a_rerun_computes_only_that(
    servers: dict, tmp_path: Path, capsys, quick_retries
) -> None:
    _faults(servers, 0.0)
    red = next((servers["root"] / "e").glob("*_SR_B4.TIF"))
    away = red.with_suffix(".away")
    red.rename(away)  # the file server answers 404
    out = tmp_path / "out"
    try:
        code, log = _run(servers, out, capsys)
    finally:
        away.rename(red)
    assert code == 1, log
    assert f"item {servers['east']} asset red" in log and "404" in log, log
    assert (out / "west" / "2019" / "item.json").is_file()
    assert not (out / "east" / "2019" / "item.json").exists()
    kept = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and "east" not in p.parts}
    kept = {p: t for p, t in kept.items() if "tiles" not in p.parts or "item.json" in p.name or p.suffix == ".tif"}
    code, log = _run(servers, out, capsys)  # the asset is back
    assert code == 0, log
    assert "skip west 2019: done" in log
    assert (out / "east" / "2019" / "item.json").is_file()
    west_tiles = [p for p in kept if "tiles" in p.parts]
    assert west_tiles and all(p.stat().st_mtime_ns == kept[p] for p in west_tiles)  # not rewritten
    assert (out / "west" / "2019" / "ndvi.tif").stat().st_mtime_ns == kept[out / "west" / "2019" / "ndvi.tif"]


def test_a_truncated_asset_is_named(servers: dict, tmp_path: Path, capsys, quick_retries) -> None:
    _faults(servers, 0.0)
    nir = next((servers["root"] / "e").glob("*_SR_B5.TIF"))
    whole = nir.read_bytes()
    nir.write_bytes(whole[: len(whole) // 3])  # a download cut short
    try:
        code, log = _run(servers, tmp_path / "out", capsys)
    finally:
        nir.write_bytes(whole)
    assert code == 1, log
    assert f"item {servers['east']} asset nir (http://" in log and "truncated" in log, log
    assert "Traceback" not in log
