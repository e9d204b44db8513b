"""Sentinel Hub as a scene source, against a fake Sentinel Hub HTTP server on 127.0.0.1.

The fake (tests/servers/fake_sentinelhub.py) serves the Sentinel-2 scenes of a simulated eqi
archive through the OAuth, Catalog and Process endpoints; the oracle for pixels is the archive
source reading the same scene files directly (odc-stac), an independent path.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from odc.geo.geobox import GeoBox
from pyproj import Transformer
from rasterio.transform import Affine
from shapely.geometry import Polygon

from eqi.demo import simulate_archive
from eqi.errors import ConfigError
from eqi.geo.crs import ALBERS_CHINA
from eqi.io.catalog import SentinelHubCatalog, needs_materialize, open_catalog
from eqi.io.catalog.archive import index_archive
from eqi.io.catalog.sentinelhub import parse_source
from eqi.io.catalog.sentinelhub.source import CDSE_URL, token_url_for
from eqi.io.load import group_items, load_group
from eqi.sensors import s2_boa_offset_dn

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FAKE = REPO / "tests" / "servers" / "fake_sentinelhub.py"
TINY = Polygon([(103.80, 30.69), (103.825, 30.70), (103.815, 30.72), (103.79, 30.71)])
BBOX = (103.79, 30.69, 103.825, 30.72)
PERIOD = "2022-06-01/2023-09-30"  # 4 dates of baseline 02.14, 4 (+1 in June) of 05.09
BANDS = ["red", "nir", "swir16"]
CLIENT = "eqi-test-client"
SECRET = "eqi-test-secret-" + secrets.token_hex(12)  # grepped for: must appear nowhere


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sh-sim")
    archive = simulate_archive(TINY, root / "archive", region_name="tiny", years=(2022, 2023), margin_m=600.0)
    parquet = index_archive([archive.scenes_dir], root / "archive.parquet").out
    return archive, parquet


class Fake:
    def __init__(self, url: str, log: Path) -> None:
        self.url = url
        self.log = log
        self.source = "sentinelhub+http://" + url.removeprefix("http://")

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(f"{self.url}/_stats", timeout=5) as answer:
            return json.loads(answer.read())


@pytest.fixture(scope="module")
def start_fake(sim, tmp_path_factory) -> Iterator[Callable[..., Fake]]:
    """Start fake Sentinel Hub servers (real processes); all stopped after the module."""
    processes: list[subprocess.Popen] = []
    logs = []

    def start(*extra: str) -> Fake:
        port = _free_port()
        log_path = tmp_path_factory.mktemp("fake-log") / "fake.log"
        log = log_path.open("w")
        logs.append(log)
        env = {**os.environ, "FAKE_SH_CLIENT_SECRET": SECRET}
        process = subprocess.Popen(
            [sys.executable, str(FAKE), "--port", str(port), "--archive", str(sim[1]),
             "--client-id", CLIENT, *extra],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        processes.append(process)
        fake = Fake(f"http://127.0.0.1:{port}", log_path)
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"fake Sentinel Hub exited {process.returncode}: {log_path.read_text()}")
            try:
                fake.stats()
                return fake
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("fake Sentinel Hub did not answer within 30 s")
                time.sleep(0.1)

    try:
        yield start
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def fake(start_fake) -> Fake:
    return start_fake("--max-page-size", "2")  # 2 features a page: the search must follow `next`


GOOD_ENV = {"SH_CLIENT_ID": CLIENT, "SH_CLIENT_SECRET": SECRET}


def _geoboxes() -> dict[str, GeoBox]:
    # a 30 m UTM tile not aligned with the scenes' 20 m grid: Sentinel Hub (the fake) resamples
    utm = GeoBox((120, 120), Affine(30, 0, 383537.0, 0, -30, 3399111.0), "EPSG:32648")
    # the run default, Albers (a PROJ string, no EPSG code): requested on a UTM grid, then warped
    x0, y0 = Transformer.from_crs("EPSG:4326", ALBERS_CHINA, always_xy=True).transform(103.795, 30.715)
    albers = GeoBox((100, 100), Affine(30, 0, x0 + 7.3, 0, -30, y0 + 3.1), ALBERS_CHINA)
    return {"utm-30m": utm, "albers-30m": albers}


def _load(items, geobox) -> list:
    return [(g, load_group(g, geobox).compute()) for g in group_items(items, BANDS)]


@pytest.mark.parametrize("grid", ["utm-30m", "albers-30m"])
def test_same_dn_as_the_archive_source(sim, fake, tmp_path, grid) -> None:
    geobox = _geoboxes()[grid]
    archive_items = open_catalog(sim[1]).search(bbox=BBOX, datetime=PERIOD, collections=["sentinel-2-l2a"])
    before = fake.stats()
    catalog = open_catalog(fake.source, environ=GOOD_ENV, cache_dir=tmp_path / "cache")
    assert isinstance(catalog, SentinelHubCatalog) and needs_materialize(catalog)
    assert "accepted" in catalog.check()
    found = catalog.search(bbox=BBOX, datetime=PERIOD, collections=["sentinel-2-l2a"])
    assert fake.stats()["catalog_requests"] - before["catalog_requests"] == 5  # 9 features, pages of 2
    # the same acquisitions, under the ESA product names Sentinel Hub uses
    assert [i.id for i in found] == [i.properties["s2:product_uri"].removesuffix(".SAFE") for i in archive_items]
    assert len(found) == 9 and not any(i.assets for i in found)
    # the offset rule decides from the baseline in the product id, as for the archive's items
    assert [s2_boa_offset_dn(i) for i in found] == [s2_boa_offset_dn(i) for i in archive_items]
    assert {s2_boa_offset_dn(i) for i in found} == {0, -1000}

    items = catalog.materialize(found, geobox, [*BANDS, "lwir"])  # lwir: not a Sentinel-2 band
    assert fake.stats()["process_requests"] - before["process_requests"] == 9
    assert [i.id for i in items] == [i.id for i in found]
    assert set(items[0].assets) == {*BANDS, "scl", "datamask"}
    assert items[0].properties["sentinelhub:grid"] == ("tile" if grid == "utm-30m" else "utm")

    ours, theirs = _load(items, geobox), _load(archive_items, geobox)
    assert len(ours) == len(theirs) == 2  # the two baselines are two scaling groups
    for (g_sh, ds_sh), (g_ar, ds_ar) in zip(ours, theirs, strict=True):
        assert g_sh.offset == g_ar.offset and g_sh.scale == g_ar.scale
        for band in [*BANDS, "scl"]:
            a, b = ds_sh[band].values, ds_ar[band].values
            assert a.dtype == b.dtype and a.shape == b.shape
            assert a.tobytes() == b.tobytes(), f"{grid} {band}: {(a != b).sum()} pixels differ"
        assert (ds_ar["red"].values > 0).mean() > 0.9  # not a vacuous comparison of empty arrays


def test_second_run_makes_no_process_request(fake, tmp_path) -> None:
    geobox = _geoboxes()["utm-30m"]
    cache = tmp_path / "cache"
    first = open_catalog(fake.source, environ=GOOD_ENV, cache_dir=cache)
    found = first.search(bbox=BBOX, datetime="2022-06-01/2022-09-30", collections=["sentinel-2-l2a"])
    assert len(found) == 4
    start = fake.stats()["process_requests"]
    items = first.materialize(found, geobox, BANDS)
    assert fake.stats()["process_requests"] == start + 4
    stamps = {p: p.stat().st_mtime_ns for p in cache.rglob("*.tif")}
    assert len(stamps) == 4 * (len(BANDS) + 2)
    # a rerun: a new catalog object (new process, same cache) and the same tile
    again = open_catalog(fake.source, environ=GOOD_ENV, cache_dir=cache)
    items2 = again.materialize(again.search(bbox=BBOX, datetime="2022-06-01/2022-09-30",
                                            collections=["sentinel-2-l2a"]), geobox, BANDS)  # fmt: skip
    assert fake.stats()["process_requests"] == start + 4  # no processing unit spent
    assert [i.to_dict() for i in items2] == [i.to_dict() for i in items]
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("*.tif")} == stamps
    # another tile is another request
    other = GeoBox((60, 60), Affine(30, 0, 384000.0, 0, -30, 3398000.0), "EPSG:32648")
    again.materialize(items2[:1], other, BANDS)
    assert fake.stats()["process_requests"] == start + 5
    # a tile beyond the Process API's 2500 px limit is refused before any request
    huge = GeoBox((2600, 100), Affine(30, 0, 384000.0, 0, -30, 3398000.0), "EPSG:32648")
    with pytest.raises(ConfigError, match="at most 2500 x 2500"):
        again.materialize(items2[:1], huge, BANDS)
    assert fake.stats()["process_requests"] == start + 5


def test_rate_limit_is_waited_out(start_fake, tmp_path, caplog) -> None:
    limited = start_fake("--rate-limit-first", "2", "--retry-after-ms", "1200")
    catalog = open_catalog(limited.source, environ=GOOD_ENV, cache_dir=tmp_path / "cache")
    found = catalog.search(bbox=BBOX, datetime="2022-06-01/2022-06-30", collections=["sentinel-2-l2a"])
    assert len(found) == 1
    started = time.monotonic()
    (item,) = catalog.materialize(found, _geoboxes()["utm-30m"], BANDS)
    waited = time.monotonic() - started
    stats = limited.stats()
    assert stats["process_rate_limited"] == 2 and stats["process_served"] == 1
    assert waited >= 2 * 1.2 - 0.1, f"answered after {waited:.2f} s; Retry-After asked 2 x 1.2 s"
    assert Path(item.assets["red"].href).is_file()
    assert "rate limit (HTTP 429) hit 2 time(s)" in caplog.text


def _eqi(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SH_", "EQI_SH_"))}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["XDG_CONFIG_HOME"] = env_extra.get("XDG_CONFIG_HOME", str(Path(env_extra["HOME"]) / ".config"))
    return subprocess.run([sys.executable, "-m", "eqi", *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=env_extra["HOME"])  # fmt: skip


def _files_containing(roots: list[Path], needle: str) -> list[Path]:
    hits = []
    for root in roots:
        for path in root.rglob("*") if root.is_dir() else [root]:
            if path.is_file() and needle.encode() in path.read_bytes():
                hits.append(path)
    return hits


def _search_args(fake: Fake, sim, out: Path, cache: Path, extra: str = "") -> list[str]:
    return ["search", "--source", f"{fake.source}?cache={cache}{extra}", "--collections", "sentinel-2-l2a",
            "--aoi", str(sim[0].region_path), "--year", "2022", "--out", str(out),
            "--save", str(out / "items.json")]  # fmt: skip


def test_bad_secret_exits_2_naming_the_source_and_leaks_nothing(fake, sim, tmp_path, caplog) -> None:
    wrong = "wrong-secret-" + secrets.token_hex(12)
    out, cache, home = tmp_path / "out", tmp_path / "cache", tmp_path / "home"
    out.mkdir()
    home.mkdir()
    refused = fake.stats()["token_refused"]
    res = _eqi(_search_args(fake, sim, out, cache),
               {"SH_CLIENT_ID": CLIENT, "SH_CLIENT_SECRET": wrong, "HOME": str(home)})  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.startswith("error: Sentinel Hub refused the client credentials")
    assert "environment variables SH_CLIENT_ID / SH_CLIENT_SECRET" in res.stderr
    assert "unauthorized_client" in res.stderr
    assert fake.stats()["token_refused"] == refused + 1
    # in-process, with every logger at DEBUG (requests-oauthlib logs request bodies at DEBUG)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # an in-process `eqi` call of another test quiets it
    catalog = open_catalog(fake.source, environ={"SH_CLIENT_ID": CLIENT, "SH_CLIENT_SECRET": wrong},
                           cache_dir=cache)  # fmt: skip
    with pytest.raises(ConfigError, match="refused the client credentials"):
        catalog.check()
    with pytest.raises(ConfigError) as err:
        catalog.search(bbox=BBOX, datetime=PERIOD, collections=["sentinel-2-l2a"])
    assert err.value.exit_code == 2
    assert any(r.name.startswith("urllib3") for r in caplog.records)  # DEBUG really was captured
    for text in (res.stdout, res.stderr, caplog.text, str(err.value), repr(catalog), repr(catalog.credentials)):
        assert wrong not in text and SECRET not in text
    assert _files_containing([out, cache, home, fake.log], wrong) == []


def _credentials_file(path: Path, secret: str, mode: int) -> Path:
    path.write_text(f'[default-profile]\nsh_client_id = "{CLIENT}"\nsh_client_secret = "{secret}"\n')
    path.chmod(mode)
    return path


def test_credentials_file_must_be_private(fake, sim, tmp_path) -> None:
    out, cache, home = tmp_path / "out", tmp_path / "cache", tmp_path / "home"
    out.mkdir()
    home.mkdir()
    shared = _credentials_file(tmp_path / "shared.toml", SECRET, 0o644)
    res = _eqi(_search_args(fake, sim, out, cache, f"&credentials={shared}"), {"HOME": str(home)})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"credentials file {shared} can be read by other users (mode 0644)" in res.stderr
    assert f"chmod 600 {shared}" in res.stderr
    # the sentinelhub package's own config.toml, found without any option, is checked too
    config = home / ".config" / "sentinelhub"
    config.mkdir(parents=True)
    _credentials_file(config / "config.toml", SECRET, 0o640)
    res = _eqi(_search_args(fake, sim, out, cache), {"HOME": str(home)})
    assert res.returncode == 2 and "(mode 0640)" in res.stderr and str(config / "config.toml") in res.stderr
    # private: accepted; the items found are saved without secrets or tokens
    (config / "config.toml").chmod(0o600)
    res = _eqi(_search_args(fake, sim, out, cache), {"HOME": str(home)})
    assert res.returncode == 0, res.stderr
    assert "tiny 2022: 4 scene(s)" in res.stdout
    saved = json.loads((out / "items.json").read_text())
    assert [f["properties"]["s2:processing_baseline"] for f in saved["features"]] == ["02.14"] * 4
    assert _files_containing([out, cache], SECRET) == []
    assert "Bearer" not in (out / "items.json").read_text()


def test_source_strings() -> None:
    local = parse_source("sentinelhub+http://127.0.0.1:8080?cache=/tmp/c&utm_resolution=10")
    assert local.base_url == "http://127.0.0.1:8080" and local.cache_dir == Path("/tmp/c")
    assert local.utm_resolution == 10.0 and token_url_for(local.base_url) == "http://127.0.0.1:8080/oauth/token"
    cdse = parse_source("sentinelhub://cdse")
    assert cdse.base_url == CDSE_URL
    assert token_url_for(CDSE_URL).startswith("https://identity.dataspace.copernicus.eu/")
    assert parse_source("sentinelhub://").base_url is None
    with pytest.raises(ConfigError, match="unknown option"):
        parse_source("sentinelhub://cdse?secret=x")
    with pytest.raises(ConfigError, match="not https"):
        SentinelHubCatalog("sentinelhub+http://example.org", environ=GOOD_ENV)
    with pytest.raises(ConfigError, match="SH_CLIENT_SECRET is not"):
        SentinelHubCatalog("sentinelhub://cdse", environ={"SH_CLIENT_ID": CLIENT, "XDG_CONFIG_HOME": "/nonexistent"})
    with pytest.raises(ConfigError, match="serves sentinel-2-l2a only"):
        SentinelHubCatalog("sentinelhub://cdse", environ=GOOD_ENV).search(
            bbox=BBOX, datetime=PERIOD, collections=["landsat-c2-l2"]
        )
