"""Read faults: which failures are retried, which asset a failure names, GDAL's retry settings."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from eqi.errors import AssetReadError
from eqi.io.gdal import HTTP_RETRY_OPTIONS, gdal_options
from eqi.io.read_errors import failed_assets, forget, is_transient, probe_asset, watch_read_failures
from eqi.pipeline.tile_tasks import _read_error

REMOTE = "http://127.0.0.1:9/e/B4.TIF"


def test_http_refusals_are_final_server_trouble_is_retried() -> None:
    assert not is_transient("HTTP response code: 404", [REMOTE])
    assert not is_transient("HTTP response code: 403", [REMOTE])
    assert is_transient("HTTP response code: 503", [REMOTE])
    assert is_transient("HTTP response code: 429", [REMOTE])
    assert is_transient("Recv failure: Connection reset by peer", [REMOTE])
    assert is_transient("Chunk and warp failed", [REMOTE])  # a cut-off range read
    assert not is_transient("Chunk and warp failed", ["/data/B4.TIF"])  # a local file stays as it is


def test_the_failed_read_record_names_item_and_asset() -> None:
    watch_read_failures()
    logging.getLogger("odc.loader._rio").error(
        "Failed to load %s:%d due to rasterio error: '%s'", "/vsicurl/" + REMOTE, 1, "HTTP response code: 404"
    )  # what odc-loader logs before raising the bare rasterio error
    assets = {REMOTE: ("LC08_e", "red"), "http://127.0.0.1:9/e/B5.TIF": ("LC08_e", "nir")}
    assert failed_assets(assets) == [("LC08_e", "red", "HTTP response code: 404")]
    error = _read_error("x+001y-001", 2019, OSError("HTTP response code: 404"), assets, probe=False)
    assert isinstance(error, AssetReadError) and error.exit_code == 2
    assert "item LC08_e asset red" in str(error) and REMOTE in str(error) and "404" in str(error)
    forget(assets)
    assert failed_assets(assets) == []


def _tif(path: Path) -> Path:
    data = np.arange(256 * 256, dtype="uint16").reshape(256, 256)
    with rasterio.open(path, "w", driver="GTiff", width=256, height=256, count=1, dtype="uint16",
                       crs="EPSG:32618", transform=from_origin(0, 0, 30, 30), tiled=True,
                       blockxsize=128, blockysize=128) as dst:  # fmt: skip
        dst.write(data, 1)
    return path


def test_a_truncated_raster_is_found_and_named(tmp_path: Path) -> None:
    good = _tif(tmp_path / "good.tif")
    cut = _tif(tmp_path / "cut.tif")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    assert probe_asset(str(good)) is None
    assert probe_asset(str(cut))  # its last block is gone
    assert probe_asset(str(tmp_path / "absent.tif"))
    assets = {str(good): ("S1", "red"), str(cut): ("S1", "nir")}
    error = _read_error("x+000y-000", 2019, OSError("Read failed"), assets, probe=True)
    assert f"item S1 asset nir ({cut})" in str(error) and "asset red" not in str(error)


def test_retry_settings_reach_gdal_and_the_environment_can_tune_them() -> None:
    opts = gdal_options({})
    assert opts["GDAL_HTTP_RETRY_CODES"] == "429,500,502,503,504" and int(opts["GDAL_HTTP_MAX_RETRY"]) >= 3
    tuned = gdal_options({"GDAL_HTTP_MAX_RETRY": "10", "GDAL_CACHEMAX": "9999"})
    assert tuned["GDAL_HTTP_MAX_RETRY"] == "10" and tuned["GDAL_CACHEMAX"] == 2 * 2**20  # only retry keys
    assert set(HTTP_RETRY_OPTIONS) <= set(opts)


def test_the_scheduler_in_the_config_does_not_change_task_ids() -> None:
    from eqi.config import build_config, config_hash

    base = {"source": "archive.parquet", "aoi": "sichuan:510115", "years": [2020], "out": "out"}
    cfg = build_config({**base, "dask": {"scheduler": "tcp://10.0.0.5:8786"}})
    assert cfg.dask.scheduler == "tcp://10.0.0.5:8786"
    assert config_hash(cfg) == config_hash(build_config(base))  # where it runs is not a result


def test_a_tile_task_on_a_worker_computes_on_the_worker_threads_not_a_nested_graph() -> None:
    import dask
    import dask.threaded
    from distributed import Client

    from eqi.pipeline.tile_tasks import _tile_scheduler

    def inside() -> tuple[bool, int]:
        from dask.base import get_scheduler

        with _tile_scheduler(True):
            return get_scheduler() is dask.threaded.get, dask.config.get("pool")._max_workers

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as client:
        threaded, threads = client.submit(inside, pure=False).result()
    assert threaded and threads == 2  # the worker's nthreads, on a pool of this process
    assert dask.config.get("pool", None) is None


def test_a_tile_whose_read_fails_transiently_is_tried_again(monkeypatch) -> None:
    """The retry loop of a tile task: a 503 that GDAL's own retries did not absorb is tried again
    after the backoff; a 404 is not; the third failure is final and names the file."""
    from types import SimpleNamespace

    from rasterio.errors import RasterioIOError

    from eqi.pipeline import tile_tasks

    answers: list[Exception | None] = []
    calls: list[str] = []

    def fake_run_tile(plan, tile, scenes, **kwargs):  # stands in for loading and compositing
        calls.append(tile)
        answer = answers.pop(0)
        if answer is not None:
            raise answer

    cleared: list[int] = []
    monkeypatch.setattr(tile_tasks, "run_tile", fake_run_tile)
    monkeypatch.setattr(tile_tasks, "_assets", lambda plan, tile, scenes: {REMOTE: ("LC08_e", "red")})
    monkeypatch.setattr(tile_tasks, "clear_http_cache", lambda: cleared.append(1))
    job = tile_tasks.TileJob(2019, "x+001y-001", "tile_id")  # type: ignore[arg-type]
    run = lambda: tile_tasks.execute_tile(SimpleNamespace(), job, SimpleNamespace(), progress=lines.append,  # noqa: E731
                                          attempts=3, backoff=0.01)  # type: ignore[arg-type]  # fmt: skip
    lines: list[str] = []
    answers[:] = [RasterioIOError("HTTP response code: 503"), None]
    report = run()
    assert report.error is None and report.attempts == 2 and len(cleared) == 1
    assert any("retry 2/3" in line for line in lines)
    answers[:] = [RasterioIOError("HTTP response code: 404")]
    report = run()
    assert report.attempts == 1 and "item LC08_e asset red" in str(report.error)
    answers[:] = [RasterioIOError("HTTP response code: 503")] * 3
    report = run()
    assert report.attempts == 3 and isinstance(report.error, AssetReadError) and REMOTE in str(report.error)
