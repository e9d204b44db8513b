"""The archive served as a real STAC API by ``rustac serve``, searched with pystac-client."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pystac_client import Client

from eqi.io.catalog import open_catalog
from eqi.io.catalog.archive import ArchiveCatalog, index_archive

pytestmark = pytest.mark.integration

CASES = [
    # (bbox, datetime, expected ids)
    ((-180, -90, 180, 90), "2010-01-01/2025-12-31", [
        "LC08_L2SP_017036_20130419_20200913_02_T2",
        "LC08_L2SP_005009_20150710_20200908_02_T2",
        "LC08_L2SP_008059_20191201_20200825_02_T1",
        "S2A_29RKH_20200219_0_L2A",
    ]),
    ((-75.5, 1.0, -75.0, 1.5), "2019-01-01/2019-12-31", ["LC08_L2SP_008059_20191201_20200825_02_T1"]),
    ((-12.0, 24.0, -10.0, 26.0), "2020-02-01/2020-02-29", ["S2A_29RKH_20200219_0_L2A"]),
    ((-75.5, 1.0, -75.0, 1.5), "2020-01-01/2020-12-31", []),
    ((103.0, 30.0, 104.0, 31.0), "2010-01-01/2025-12-31", []),
]  # fmt: skip
COLLECTIONS = ["landsat-c2-l2", "sentinel-2-l2a"]


def _rustac() -> str:
    found = Path(sys.executable).with_name("rustac")
    if found.exists():
        return str(found)
    path = shutil.which("rustac")
    if path is None:
        pytest.skip("the rustac command (pip package rustac) is not installed")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def archive_file(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("served") / "archive.parquet"
    index_archive(
        [
            sample_data / "landsat-c2l2-downsampled-scenes",
            sample_data / "sentinel2-l2a-29RKH-downsampled",
        ],
        out,
    )
    return out


@pytest.fixture(scope="module")
def served(archive_file: Path) -> Iterator[str]:
    """``rustac serve`` on a free loopback port; stopped after the tests, also on failure."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = archive_file.with_suffix(".log").open("w")
    # --use-duckdb false: the DuckDB backend downloads its 'spatial' extension at start-up
    process = subprocess.Popen(
        [
            _rustac(),
            "serve",
            "--use-duckdb",
            "false",
            "--addr",
            f"127.0.0.1:{port}",
            str(archive_file),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"rustac serve exited with {process.returncode}: {archive_file.with_suffix('.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("rustac serve did not answer within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.mark.parametrize(("bbox", "datetime", "expected"), CASES)
def test_served_archive_answers_like_in_process_search(
    served, archive_file, bbox, datetime, expected
) -> None:
    client = Client.open(served)
    found = client.search(
        collections=COLLECTIONS, bbox=list(bbox), datetime=datetime, max_items=100
    )
    served_ids = sorted(item.id for item in found.items())
    assert served_ids == sorted(expected)
    in_process = ArchiveCatalog(archive_file).search(
        bbox=bbox, datetime=datetime, collections=COLLECTIONS
    )
    assert [item.id for item in in_process] == expected


def test_eqi_stac_api_catalog_reads_the_served_archive(served) -> None:
    catalog = open_catalog(served, retries=1, backoff_factor=0.01, timeout=10)
    items = catalog.search(bbox=CASES[0][0], datetime=CASES[0][1], collections=COLLECTIONS)
    assert [item.id for item in items] == CASES[0][2]  # same deterministic order
    landsat = items[0]
    assert landsat.assets["red"].href.endswith("_SR_B4.TIF")
    assert landsat.properties["proj:code"] == "EPSG:32617"


def test_eqi_run_through_the_served_api_equals_the_archive_run(served, archive_file, tmp_path) -> None:
    """`eqi run --source http://127.0.0.1:PORT` (a real STAC API) gives the same NDVI bytes."""
    import json

    import numpy as np
    import rasterio

    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "Feature", "properties": {"name": "served"}, "geometry": {
        "type": "Polygon", "coordinates": [[[-75.3, 1.2], [-75.0, 1.2], [-75.0, 1.5], [-75.3, 1.5], [-75.3, 1.2]]]}}))  # fmt: skip
    arrays = []
    for source in (served, str(archive_file)):
        out = tmp_path / ("api" if source == served else "file")
        res = subprocess.run(
            [sys.executable, "-m", "eqi", "run", "--source", source, "--collections", "landsat-c2-l2",
             "--aoi", str(aoi), "--year", "2019", "--season", "11-01/12-31", "--crs", "EPSG:32618",
             "--resolution", "450", "--products", "ndvi", "--out", str(out)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr
        with rasterio.open(out / "served" / "2019" / "ndvi.tif") as src:
            arrays.append(src.read(1))
    assert np.isfinite(arrays[0]).sum() > 100
    np.testing.assert_array_equal(arrays[0], arrays[1])


def test_validate_checks_the_served_api(served, tmp_path) -> None:
    import yaml

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "source": served, "collections": ["landsat-c2-l2"], "aoi": "sichuan:510115",
        "years": [2019], "out": str(tmp_path / "out"),
    }))  # fmt: skip
    res = subprocess.run([sys.executable, "-m", "eqi", "validate", str(cfg)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "STAC API reachable" in res.stdout and "wenjiang-510115" in res.stdout
