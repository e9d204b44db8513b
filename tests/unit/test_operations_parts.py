"""Operations pieces on their own: redaction, log formats, YAML line numbers, plan estimate and
limits, the stale-lock warning, failure records (issue 11)."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
from pathlib import Path

import pytest

from eqi.config import build_config, load_config, yaml_lines
from eqi.errors import ConfigError, InputError
from eqi.io.atomic import atomic_write_json
from eqi.io.logs import JsonFormatter, TextFormatter, configure_logging
from eqi.io.redact import REDACTED, RedactingFilter, redact, register_secret
from eqi.pipeline.checks import (
    PlanLimits,
    check_output_folder,
    check_plan,
    estimate_outputs,
    native_resolution,
)
from eqi.pipeline.lock import RunLock
from eqi.pipeline.plan import build_plan

BASE = {"source": "a.parquet", "collections": ["landsat-c2-l2"], "aoi": "sichuan:510115", "years": [2022, 2023],
        "products": ["ndvi"], "tile_size": 512}  # fmt: skip


# ------------------------------------------------------------------------------ redaction


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("https://a.blob.core.windows.net/c/B04.tif?st=2024-01-01T00%3A00Z&se=2024-01-02&sp=rl&sv=2021-06-08&sr=c&sig=AbC%2Bdef%3D",
         "https://a.blob.core.windows.net/c/B04.tif?st=", "AbC%2Bdef"),
        ("https://b.s3.amazonaws.com/k.tif?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F2024&X-Amz-Signature=0123abcd",
         "X-Amz-Algorithm=AWS4-HMAC-SHA256", "0123abcd"),
        ("GET https://x/y?token=tok123456&page=2", "&page=2", "tok123456"),
        ('{"client_secret": "s3cr3t-value", "id": "abc"}', '"id": "abc"', "s3cr3t-value"),
        ("sh_client_secret = 'file-secret-1'", "sh_client_secret", "file-secret-1"),
        ("header Authorization: Bearer abcdefghijklmnop", "Authorization: Bearer", "abcdefghijklmnop"),
        ("https://user:hunter2pw@example.org/stac", "https://user:", "hunter2pw"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "token", "eyJhbGciOi"),
    ],
)  # fmt: skip
def test_redact_removes_the_secret_and_keeps_the_rest(text: str, kept: str, gone: str) -> None:
    out = redact(text)
    assert gone not in out and kept in out and REDACTED in out


def test_redact_leaves_ordinary_text_and_urls_alone() -> None:
    for text in ("done wenjiang-510115 2023 in 12.1 s", "https://earth-search.aws.element84.com/v1/search?limit=100",
                 "/data/LC08_L2SP_129039_20230801_02_T1_SR_B4.TIF", "secret santa"):  # fmt: skip
        assert redact(text) == text


def test_registered_secret_is_redacted_in_logs_and_files(tmp_path: Path) -> None:
    register_secret("my-registered-secret-42")
    path = atomic_write_json(tmp_path / "m.json", {"note": "used my-registered-secret-42 here"})
    assert "my-registered-secret-42" not in path.read_text() and REDACTED in path.read_text()
    record = logging.LogRecord("eqi.x", logging.ERROR, __file__, 1, "auth with %s failed", ("my-registered-secret-42",), None)
    RedactingFilter().filter(record)
    assert "my-registered-secret-42" not in JsonFormatter().format(record)


def test_redacting_filter_covers_tracebacks() -> None:
    try:
        raise ValueError("bad url https://x/y?sig=tracebacksecret")
    except ValueError:
        import sys

        record = logging.LogRecord("eqi.x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    RedactingFilter().filter(record)
    text = TextFormatter().format(record)
    assert "tracebacksecret" not in text and "ValueError" in text


# ------------------------------------------------------------------------------ log formats


def test_json_lines_carry_time_level_logger_message_and_task_fields(tmp_path: Path, capsys) -> None:
    log_file = tmp_path / "logs" / "run.jsonl"
    configure_logging(log_file=log_file, fmt="json")
    try:
        logging.getLogger("eqi.run").info("task %s done", "x", extra={"eqi_task": "x_2023_abc", "eqi_year": 2023,
                                                                        "eqi_console": False})  # fmt: skip
        logging.getLogger("eqi.cli").warning("careful: https://h/p?sig=zzzsecret")
        logging.getLogger("eqi.cli").info("summary: exit 0", extra={"eqi_stream": "stdout", "eqi_exit_code": 0})
    finally:
        configure_logging()
    rows = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [r["logger"] for r in rows] == ["eqi.run", "eqi.cli", "eqi.cli"]
    assert rows[0]["task"] == "x_2023_abc" and rows[0]["year"] == 2023 and rows[0]["level"] == "INFO"
    assert "zzzsecret" not in log_file.read_text() and rows[2]["exit_code"] == 0
    assert "console" not in rows[0] and "stream" not in rows[2]
    out = capsys.readouterr()
    assert out.out == "summary: exit 0\n"  # with a log file the console has the summary ...
    assert out.err == "warning: careful: https://h/p?sig=REDACTED\n"  # ... and the warnings


def test_unwritable_log_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="cannot open the log file"):
        configure_logging(log_file=tmp_path / "f" / "run.log")
    configure_logging()


# ------------------------------------------------------------------------------ config lines


def test_yaml_lines_by_path() -> None:
    text = "source: a\nmask:\n  buffer_px: 3\n  scl_bad:\n    - 3\n    - 8\nyears: [2020, 2021]\n"
    lines = yaml_lines(text)
    assert lines[("mask", "buffer_px")] == 3 and lines[("mask", "scl_bad", 1)] == 6 and lines[("years",)] == 7


def test_config_error_names_field_line_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("source: a.parquet\naoi: sichuan:510115\nyears: [2023]\nout: o\n\nmask:\n  scl_bad: [3, 12]\n"
                    "rsei:\n  variant: rsei4\n")  # fmt: skip
    with pytest.raises(ConfigError) as info:
        load_config(path, {"resolution": 0.0})
    text = str(info.value)
    assert "mask.scl_bad.1 (line 7)" in text or "mask.scl_bad (line 7)" in text
    assert "rsei.variant (line 9)" in text and "resolution (from the command line)" in text
    path.write_text("source: a.parquet\naoi: sichuan:510115\nyears: [2023]\n")
    with pytest.raises(ConfigError, match=r"out \(not in the file\)"):
        load_config(path)


# ------------------------------------------------------------------------------ plan estimate


def test_estimate_is_tiles_years_pixels_and_dtype_sizes(tmp_path: Path) -> None:
    plan = build_plan(build_config({**BASE, "out": str(tmp_path / "out")}))
    assert len(plan.tiles) == 6 and plan.tile_products == ("ndvi",) and plan.outputs == ("ndvi",)
    px = 512 * 512
    # tile store: 6 tiles x 2 years x px x 4 B (float32 NDVI); region COG: its 6 tiles x 2 years x px x 4 B
    expected = 6 * 2 * px * 4 + 6 * 2 * px * 4
    est = estimate_outputs([plan])
    assert est.bytes == expected == 25_165_824 and est.pixels_per_year == 6 * px and est.tasks_to_write == 14
    assert estimate_outputs([plan], disk_factor=0.5).bytes == expected // 2
    # a finished tile is not written again (unless overwrite)
    done = plan.tile_dir(2022, plan.tiles[0]) / "item.json"
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    assert estimate_outputs([plan]).bytes == expected - px * 4
    assert estimate_outputs([plan], overwrite=True).bytes == expected


def test_native_resolutions() -> None:
    assert native_resolution(["landsat-c2-l2"]) == 30 and native_resolution(["sentinel-2-l2a"]) == 10
    assert native_resolution(["landsat-c2-l2", "sentinel-2-l2a"]) == 10


@pytest.mark.parametrize(("collections", "resolution", "ok"), [
    (["landsat-c2-l2"], 7.5, True), (["landsat-c2-l2"], 7.0, False), (["sentinel-2-l2a"], 2.5, True),
    (["sentinel-2-l2a"], 2.0, False), (["landsat-c2-l2", "sentinel-2-l2a"], 10, True),
])  # fmt: skip
def test_upsampling_limit(tmp_path: Path, collections, resolution, ok) -> None:
    plan = build_plan(build_config({**BASE, "collections": collections, "resolution": resolution, "tile_size": 4096,
                                    "out": str(tmp_path / "out")}))  # fmt: skip
    limits = PlanLimits(max_pixels=1e12, disk_reserve_bytes=0, disk_factor=1e-9)
    if ok:
        check_plan([plan], limits)
    else:
        with pytest.raises(ConfigError, match="finer than the finest native pixels"):
            check_plan([plan], limits)
        check_plan([plan], limits, force=True)
    assert not (tmp_path / "out").exists()


def test_pixel_and_disk_limits(tmp_path: Path) -> None:
    plan = build_plan(build_config({**BASE, "out": str(tmp_path / "out")}))
    with pytest.raises(ConfigError, match="max_pixels"):
        check_plan([plan], PlanLimits(max_pixels=6 * 512 * 512 - 1))
    check_plan([plan], PlanLimits(max_pixels=6 * 512 * 512))
    with pytest.raises(ConfigError, match="not enough free disk"):
        check_plan([plan], PlanLimits(disk_reserve_bytes=1e18))
    assert check_plan([plan], PlanLimits(disk_reserve_bytes=1e18), force=True).bytes == 25_165_824
    assert not (tmp_path / "out").exists()


def test_output_folder_checks_create_nothing(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        check_output_folder(tmp_path / "file" / "out")
    with pytest.raises(InputError, match="not a folder"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(InputError, match="cannot be created"):
        check_output_folder(Path("/proc/eqi-out/x"))
    assert check_output_folder(tmp_path / "a" / "b") == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


# ------------------------------------------------------------------------------ lock


def test_stale_lock_warning_names_the_dead_holder(tmp_path: Path, caplog) -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    (tmp_path / ".eqi.lock").write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname(), "started": "t0"}))
    with caplog.at_level(logging.WARNING, logger="eqi.lock"):
        with RunLock(tmp_path) as lock:
            assert lock.previous == {"pid": proc.pid, "host": socket.gethostname(), "started": "t0"}
    assert f"pid {proc.pid}" in caplog.text and "no longer running" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eqi.lock"):
        with RunLock(tmp_path):
            pass
    assert caplog.text == ""  # released cleanly: not stale
    (tmp_path / ".eqi.lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "t0"}))
    with caplog.at_level(logging.WARNING, logger="eqi.lock"):
        with RunLock(tmp_path):
            pass
    assert "another host" in caplog.text and "elsewhere" in caplog.text


# ------------------------------------------------------------------------------ status records


def test_status_from_records_and_a_running_lock(tmp_path: Path) -> None:
    from eqi.pipeline.status import clear_failure, read_status, write_failure, write_run_record

    tasks = [{"task_id": f"r_{y}_abc", "region": "r", "year": y, "dir": tmp_path / "r" / str(y)} for y in (2022, 2023, 2024)]
    write_run_record(tmp_path, tasks)
    write_failure(tmp_path / "r" / "2023", "r_2023_abc", region="r", year=2023, message="tile x failed: https://h/a?sig=s1gsecret", exit_code=1)
    write_failure(tmp_path / "r" / "2024", "r_2024_OLD", region="r", year=2024, message="older task id", exit_code=1)
    item = tmp_path / "r" / "2022" / "item.json"
    item.parent.mkdir(parents=True)
    item.write_text(json.dumps({"properties": {"eqi:task_id": "r_2022_abc"}, "assets": {}}))
    with RunLock(tmp_path):
        status = read_status(tmp_path)
        assert status["running"]["pid"] is not None
    assert [t["state"] for t in status["tasks"]] == ["done", "failed", "pending"]
    assert "s1gsecret" not in (tmp_path / "r" / "2023" / "eqi-failure.json").read_text()
    assert read_status(tmp_path)["running"] is None
    clear_failure(tmp_path / "r" / "2023")
    assert read_status(tmp_path)["counts"] == {"done": 1, "failed": 0, "pending": 2}


def test_ecosystem_quality_whole_area_memory_limit(tmp_path: Path, monkeypatch) -> None:
    """ecosystem_quality holds the area in memory: 6 tiles x 512² px x 2 years x 40 B per pixel-year."""
    from eqi.pipeline import checks

    plan = build_plan(build_config({**BASE, "products": ["ndvi", "ecosystem_quality"], "out": str(tmp_path / "out")}))
    need = 6 * 512 * 512 * 2 * 40
    limits = PlanLimits(disk_reserve_bytes=0)
    monkeypatch.setattr(checks, "_available_memory", lambda: int(need / 0.8) - 8)
    with pytest.raises(ConfigError, match=r"ecosystem_quality holds the whole evaluation area in memory: about 125.8 MB"):
        check_plan([plan], limits)
    check_plan([plan], limits, force=True)
    monkeypatch.setattr(checks, "_available_memory", lambda: int(need / 0.8) + 8)
    check_plan([plan], limits)
    ndvi_only = build_plan(build_config({**BASE, "out": str(tmp_path / "out")}))
    monkeypatch.setattr(checks, "_available_memory", lambda: 1)
    check_plan([ndvi_only], limits)  # no whole-area step: no memory check
    assert not (tmp_path / "out").exists()
