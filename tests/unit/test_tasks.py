"""Task ids, done markers, atomic writes, the run lock and temp cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from eqi.errors import ConfigError, LockHeldError
from eqi.io.atomic import (
    TEMP_MARKER,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    clean_stale_temps,
    scratch_dir,
    sha256_file,
    temp_name,
)
from eqi.pipeline.lock import RunLock
from eqi.pipeline.tasks import TaskPaths, check_done, is_done, task_id

PARAMS = {
    "products": ["ndvi", "rsei"],
    "grid": {"crs": "EPSG:32648", "res": 30},
    "season": "05-01/09-30",
}


# ------------------------------------------------------------------------------ task ids


def test_task_id_is_stable_across_processes_and_key_order() -> None:
    tid = task_id("成都市", 2020, PARAMS)
    assert tid.startswith("成都市_2020_") and len(tid.rsplit("_", 1)[1]) == 10
    reordered = {
        "season": "05-01/09-30",
        "grid": {"res": 30, "crs": "EPSG:32648"},
        "products": ["ndvi", "rsei"],
    }
    assert task_id("成都市", 2020, reordered) == tid
    # another interpreter with another hash seed computes the same id
    code = (
        "import json,sys; from eqi.pipeline.tasks import task_id; "
        "print(task_id('成都市', 2020, json.loads(sys.argv[1])))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONIOENCODING": "utf-8"}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(PARAMS)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        encoding="utf-8",
    )
    assert out.stdout.strip() == tid


def test_task_id_changes_with_params_region_and_year() -> None:
    tid = task_id("a", 2020, PARAMS)
    assert task_id("a", 2020, {**PARAMS, "season": "06-01/09-30"}) != tid
    assert task_id("a", 2020, {**PARAMS, "grid": {"crs": "EPSG:32648", "res": 10}}) != tid
    assert task_id("a", 2021, PARAMS) != tid
    assert task_id("b", 2020, PARAMS) != tid


def test_region_names_that_are_not_folder_names_are_refused(tmp_path: Path) -> None:
    for bad in ("", "../x", "a/b", ".hidden", " padded"):
        with pytest.raises(ConfigError):
            task_id(bad, 2020, {})
        with pytest.raises(ConfigError):
            TaskPaths(tmp_path, bad, 2020)


def test_task_paths_layout(tmp_path: Path) -> None:
    paths = TaskPaths(tmp_path, "ya_an", 2021)
    assert paths.dir == tmp_path / "ya_an" / "2021"
    assert paths.item == tmp_path / "ya_an" / "2021" / "item.json"
    assert paths.product("ndvi") == tmp_path / "ya_an" / "2021" / "ndvi.tif"


# ------------------------------------------------------------------------------ done markers


def _finished_task(tmp_path: Path, tid: str) -> TaskPaths:
    paths = TaskPaths(tmp_path, "r", 2020)
    tif = atomic_write_bytes(paths.product("ndvi"), b"x" * 1000)
    qml = atomic_write_text(paths.dir / "ndvi.qml", "<qgis/>")
    assets = {
        key: {
            "href": f"./{p.name}",
            "file:size": p.stat().st_size,
            "file:checksum": "1220" + sha256_file(p),
        }
        for key, p in (("ndvi", tif), ("ndvi_style", qml))
    }
    atomic_write_json(
        paths.item,
        {"type": "Feature", "id": tid, "properties": {"eqi:task_id": tid}, "assets": assets},
    )
    return paths


def test_is_done_when_item_and_all_assets_match(tmp_path: Path) -> None:
    paths = _finished_task(tmp_path, "r_2020_abc")
    assert is_done(paths, "r_2020_abc")
    assert is_done(paths, "r_2020_abc", verify_checksum=True)
    assert not is_done(paths, "r_2020_other")
    assert "belongs to task" in check_done(paths, "r_2020_other")


def test_is_done_false_when_item_missing(tmp_path: Path) -> None:
    paths = _finished_task(tmp_path, "t")
    paths.item.unlink()
    assert not is_done(paths, "t")


def test_is_done_false_when_an_asset_is_missing(tmp_path: Path) -> None:
    paths = _finished_task(tmp_path, "t")
    (paths.dir / "ndvi.qml").unlink()
    assert not is_done(paths, "t")
    assert "missing" in check_done(paths, "t")


def test_is_done_false_when_an_asset_is_truncated(tmp_path: Path) -> None:
    paths = _finished_task(tmp_path, "t")
    with open(paths.product("ndvi"), "r+b") as fh:
        fh.truncate(999)
    assert not is_done(paths, "t")
    assert "999 bytes" in check_done(paths, "t")


def test_checksum_catches_same_size_corruption(tmp_path: Path) -> None:
    paths = _finished_task(tmp_path, "t")
    paths.product("ndvi").write_bytes(b"y" * 1000)
    assert is_done(paths, "t")  # size only (the default) cannot see it
    assert not is_done(paths, "t", verify_checksum=True)


def test_is_done_false_for_unreadable_item(tmp_path: Path) -> None:
    paths = _finished_task(tmp_path, "t")
    paths.item.write_text("{ not json")
    assert not is_done(paths, "t")


# ------------------------------------------------------------------------------ atomic writes


def test_atomic_writes_replace_and_leave_no_temps(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"k": "值"})
    atomic_write_json(target, {"k": 2})
    assert json.loads(target.read_text(encoding="utf-8")) == {"k": 2}
    assert os.listdir(target.parent) == ["a.json"]


def test_atomic_path_failure_keeps_original_and_removes_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and TEMP_MARKER in tmp.name
            tmp.write_text("half")
            raise RuntimeError("killed half way")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_atomic_path_with_nothing_written_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "x.bin"):
            pass
    assert os.listdir(tmp_path) == []


def test_clean_stale_temps_removes_only_temp_names(tmp_path: Path) -> None:
    keep = [
        tmp_path / "r" / "2020" / "ndvi.tif",
        tmp_path / ".eqi.lock",
        tmp_path / "r" / "x.eqi-tmp-notes.txt",
    ]
    for p in keep:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("keep")
    stale_file = temp_name(keep[0])
    stale_file.write_text("half")
    stale_dir = temp_name(tmp_path / "r" / "2020" / "rsei.tif")
    stale_dir.mkdir()
    (stale_dir / "stage.tif").write_text("half")
    removed = clean_stale_temps(tmp_path)
    assert sorted(removed) == sorted([stale_file, stale_dir])
    assert all(p.exists() for p in keep)
    assert not stale_file.exists() and not stale_dir.exists()


def test_scratch_dir_is_removed_even_on_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        with scratch_dir(tmp_path / "p.tif") as work:
            (work / "f").write_text("x")
            raise ValueError
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------ run lock

_HOLDER = """
import sys, time
from eqi.pipeline.lock import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def _start_holder(out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_second_run_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    proc = _start_holder(tmp_path)
    try:
        with pytest.raises(LockHeldError) as info:
            RunLock(tmp_path).acquire()
        assert f"pid {proc.pid}" in str(info.value)
        assert info.value.exit_code == 75
    finally:
        proc.kill()
        proc.wait()


def test_lock_of_a_killed_run_does_not_block(tmp_path: Path) -> None:
    proc = _start_holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / ".eqi.lock").exists()  # the file stays; the kernel dropped the flock
    with RunLock(tmp_path) as lock:
        assert lock.held
        info = json.loads((tmp_path / ".eqi.lock").read_text())
        assert info["pid"] == os.getpid()
    assert not lock.held


def test_lock_is_released_on_exit_and_exclusive_within_a_process(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        with pytest.raises(LockHeldError):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path) as again:  # released: taken again at once
        assert again.held


def test_temp_names_keep_the_suffix_and_are_cleaned(tmp_path) -> None:
    from eqi.io.atomic import clean_stale_temps, temp_name

    tmp = temp_name(tmp_path / "wenjiang.gpkg")
    assert tmp.suffix == ".gpkg" and tmp.name.startswith(".wenjiang.gpkg.eqi-tmp-")
    tmp.write_bytes(b"left by a killed run")
    keep = tmp_path / "wenjiang.gpkg"
    keep.write_bytes(b"finished")
    assert clean_stale_temps(tmp_path) == [tmp]
    assert not tmp.exists() and keep.exists()
