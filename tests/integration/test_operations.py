"""Unattended runs (issue 11): the documented crontab line under ``env -i`` with no terminal,
JSON logs with the summary last, exit codes 0/1/2/75, stale-lock takeover, bad plans refused
before anything is written, ``eqi status``, and secrets in no file or log.

All on one real Landsat scene at 900 m (tiny tiles), as in test_cli_errors.py.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

SCENE = "LC08_L2SP_008059_20191201_20200825_02_T1"
REPO = Path(__file__).resolve().parents[2]
BOX = [[-75.3, 1.2], [-75.0, 1.2], [-75.0, 1.5], [-75.3, 1.5], [-75.3, 1.2]]  # inside the scene


def _eqi_script() -> str:
    """The console script of the environment running the tests (what a crontab would call)."""
    script = Path(sys.executable).parent / "eqi"
    assert script.is_file(), f"no eqi console script beside {sys.executable}"
    return str(script)


def _env(**extra: str) -> dict[str, str]:
    """What ``env -i`` leaves plus what cron sets: PATH, HOME; PYTHONPATH only to test this tree."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(extra.pop("HOME")), "PYTHONPATH": str(REPO), **extra}


def eqi_here(capsys, *args: str) -> subprocess.CompletedProcess:
    """The command line in this process (no interpreter start-up: the bad-plan cases are many)."""
    from eqi.cli import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, captured.out, captured.err)


def eqi(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eqi", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip


@pytest.fixture(scope="module")
def fixture(sample_data: Path, tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("ops")
    archive = tmp / "archive.parquet"
    res = eqi("archive", "index", str(sample_data / "landsat-c2l2-downsampled-scenes" / SCENE), "--out", str(archive))
    assert res.returncode == 0, res.stderr
    aoi = tmp / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "aoi"}, "geometry": {"type": "Polygon", "coordinates": [BOX]}}
    ]}))  # fmt: skip
    return {"tmp": tmp, "archive": archive, "aoi": aoi}


def _config(fx: dict[str, Path], out: Path, path: Path, **extra) -> Path:
    data = {"source": str(fx["archive"]), "collections": ["landsat-c2-l2"], "aoi": str(fx["aoi"]),
            "years": [2019], "season": "11-01/12-31", "crs": "EPSG:32618", "resolution": 900,
            "products": ["composite", "count", "ndvi"], "out": str(out), **extra}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _cron_line() -> str:
    """The command of the crontab example in docs/operations.md (the line after its marker)."""
    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if "eqi-cron-example" in line)
    fields = lines[i + 1].split(None, 5)
    assert len(fields) == 6 and fields[:5] == ["0", "2", "*", "*", "*"], lines[i + 1]
    return fields[5]


def _cron_run(fx: dict[str, Path], site: Path, **config_extra) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run the crontab line with /srv/eqi -> ``site``, /var/log/eqi -> ``site``/log, under
    ``env -i`` with stdin from /dev/null and no terminal; return the result and the log records."""
    (site / ".venv" / "bin").mkdir(parents=True, exist_ok=True)
    link = site / ".venv" / "bin" / "eqi"
    if not link.exists():
        link.symlink_to(_eqi_script())
    _config(fx, site / "out", site / "configs" / "sichuan-counties.yaml", **config_extra)
    log = site / "log" / "run.jsonl"
    log.unlink(missing_ok=True)
    command = _cron_line().replace("/srv/eqi", str(site)).replace("/var/log/eqi", str(site / "log"))
    res = subprocess.run(["env", "-i", *(f"{k}={v}" for k, v in _env(HOME=str(site)).items()),
                          "/bin/sh", "-c", command],
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                         start_new_session=True)  # fmt: skip  # new session: no controlling terminal
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
    return res, records


def _check_records(records: list[dict], code: int) -> dict:
    assert records, "no log written"
    for rec in records:
        assert {"time", "level", "logger", "message"} <= rec.keys(), rec
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["time"]), rec["time"]
    last = records[-1]
    assert last["message"].startswith(f"summary: exit {code}:"), last
    assert last["exit_code"] == code and set(last["summary"]) == {"done", "skipped", "failed", "failed_tasks"}
    assert sum(r["message"].startswith("summary:") for r in records) == 1
    return last


def test_cron_line_exit_codes_json_log_and_summary_last(fixture, tmp_path: Path) -> None:
    site = tmp_path / "srv"
    # 0: everything done; per-task records carry the task fields
    res, records = _cron_run(fixture, site)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "" and "Traceback" not in res.stderr
    last = _check_records(records, 0)
    assert last["summary"] == {"done": 1, "skipped": 0, "failed": 0, "failed_tasks": []}
    task = next(r for r in records if r.get("status") == "done")
    assert task["region"] == "aoi" and task["year"] == 2019 and task["task"].startswith("aoi_2019_")
    assert (site / "out" / "aoi" / "2019" / "ndvi.tif").is_file()
    # 1: a year without scenes fails, named; the other year is done (a new task id: the years are
    # part of the config hash; its tile is reused)
    res, records = _cron_run(fixture, site, years=[2019, 2020])
    assert res.returncode == 1, res.stderr
    last = _check_records(records, 1)
    assert last["summary"] == {"done": 1, "skipped": 0, "failed": 1, "failed_tasks": ["aoi/2020"]}
    assert "aoi/2020" in last["message"]
    assert any(r["level"] == "ERROR" and "aoi/2020" in r["message"] for r in records[:-1])

    # 2: a bad config: the error names the field and its YAML line; nothing is computed
    res, records = _cron_run(fixture, site, mask={"buffer_px": 99})
    assert res.returncode == 2, res.stderr
    _check_records(records, 2)
    cfg_lines = (site / "configs" / "sichuan-counties.yaml").read_text().splitlines()
    line = next(n for n, text in enumerate(cfg_lines, 1) if "buffer_px" in text)
    error = next(r for r in records if r["level"] == "ERROR" and "invalid configuration" in r["message"])
    assert f"mask.buffer_px (line {line})" in error["message"]
    assert "Traceback" not in res.stderr and "buffer_px" in res.stderr  # cron mails the error

    # 75: another run holds the lock
    from eqi.pipeline.lock import RunLock

    with RunLock(site / "out"):
        res, records = _cron_run(fixture, site)
    assert res.returncode == 75, res.stderr
    _check_records(records, 75)
    assert any(r["level"] == "ERROR" and "another eqi run holds the lock" in r["message"] for r in records)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_stale_lock_of_a_dead_run_is_taken_over_with_a_warning(fixture, tmp_path: Path) -> None:
    site = tmp_path / "srv"
    out = site / "out"
    out.mkdir(parents=True)
    pid = _dead_pid()
    (out / ".eqi.lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                               "started": "2026-01-01T02:00:00+00:00"}) + "\n")  # fmt: skip
    res, records = _cron_run(fixture, site)
    assert res.returncode == 0, res.stderr
    warning = next(r for r in records if r["level"] == "WARNING" and "stale lock" in r["message"])
    assert f"pid {pid}" in warning["message"] and "no longer running" in warning["message"]
    assert f"pid {pid}" in res.stderr  # and cron mails it
    _check_records(records, 0)
    lock = json.loads((out / ".eqi.lock").read_text())
    assert lock["pid"] != pid and "released" in lock  # released cleanly: not stale next time (unit test)


# ------------------------------------------------------------------------------ bad plans


def _snapshot(*roots: Path) -> set[str]:
    return {str(p) for root in roots for p in root.rglob("*")}


def _assert_refused(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stdout + res.stderr
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), res.stderr  # one message
    for needle in needles:
        assert needle.lower() in errors[0].lower(), (needle, errors[0])
    if res.args[0] == "run":
        assert res.stdout.strip().splitlines()[-1].startswith("summary: exit 2:")


def _flags(fx: dict[str, Path], source: str, out: Path, resolution: str = "900") -> list[str]:
    return ["run", "--source", source, "--collections", "landsat-c2-l2", "--aoi", str(fx["aoi"]),
            "--year", "2019", "--season", "11-01/12-31", "--crs", "EPSG:32618", "--resolution", resolution,
            "--products", "composite,count,ndvi", "--out", str(out)]  # fmt: skip


@pytest.fixture()
def html_server(tmp_path: Path):
    """An HTTP server on 127.0.0.1 that is no STAC API (a directory listing at the root)."""
    root = tmp_path / "www"
    root.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                import time

                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait()


def test_bad_plans_exit_2_with_one_message_and_write_nothing(fixture, tmp_path: Path, html_server: str,
                                                             capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    afile = work / "afile"
    afile.write_text("x")
    corrupt = work / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 not really parquet")
    archive = str(fixture["archive"])
    out = work / "out"
    cases = [
        # output folder that cannot be created: under a file; in /proc (writable for root by
        # permission bits, yet mkdir fails: the FileNotFoundError traceback of old)
        (_flags(fixture, archive, afile / "out"), ("cannot be created", str(afile))),
        (_flags(fixture, archive, Path("/proc/eqi-out")), ("/proc/eqi-out", "cannot be created")),
        # sources that cannot be opened: a missing archive, a corrupt one, a server that is no STAC API
        (_flags(fixture, str(work / "missing.parquet"), out), ("missing.parquet", "not found")),
        (_flags(fixture, str(corrupt), out), ("corrupt.parquet", "stac-geoparquet")),
        (_flags(fixture, html_server, out), ("STAC API", html_server.rstrip("/"))),
        # a grid 60x finer than Landsat's 30 m
        (_flags(fixture, archive, out, resolution="0.5"), ("60x finer", "30 m", "--force")),
    ]
    # too many pixels, not enough disk: limits set in the config (a disk cannot be filled here)
    big = _config(fixture, out, work / "cfg" / "pixels.yaml", plan_checks={"max_pixels": 1e5})
    disk = _config(fixture, out, work / "cfg" / "disk.yaml", plan_checks={"disk_reserve_gb": 1e9})
    cases += [(["run", str(big)], ("max_pixels", "--force")), (["run", str(disk)], ("not enough free disk", "--force")),
              (["validate", str(big)], ("max_pixels",))]  # validate checks the plan the same way
    for args, needles in cases:
        before = _snapshot(work, fixture["tmp"])
        res = eqi_here(capsys, *args)
        _assert_refused(res, *needles)
        assert _snapshot(work, fixture["tmp"]) == before, args  # no file or folder created
        assert not Path("/proc/eqi-out").exists()
    # --force accepts a large plan knowingly (dry run: the 0.5 m grid is not computed here)
    res = eqi_here(capsys, *_flags(fixture, archive, out, resolution="0.5"), "--force", "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "4290 tile(s)" in res.stdout and "compute" in res.stdout and not out.exists()
    res = eqi_here(capsys, "run", str(big), "--force")
    assert res.returncode == 0, res.stderr
    assert (out / "aoi" / "2019" / "ndvi.tif").is_file()


def test_config_error_names_field_and_line(fixture, tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"source: {fixture['archive']}\naoi: {fixture['aoi']}\nyears: [2019]\nout: {tmp_path / 'out'}\n"
                   "composite:\n  min_clear: 0\nresolution: 900\nbogus_key: 1\n")  # fmt: skip
    res = eqi_here(capsys, "run", str(cfg), "--resolution", "-5")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "composite.min_clear (line 6)" in res.stderr
    assert "bogus_key (line 8)" in res.stderr
    assert "resolution (from the command line)" in res.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ status


def test_status_lists_done_failed_and_pending(fixture, tmp_path: Path) -> None:
    out = tmp_path / "out"
    aoi2 = tmp_path / "two.geojson"
    west = [[-75.3, 1.2], [-75.15, 1.2], [-75.15, 1.5], [-75.3, 1.5], [-75.3, 1.2]]
    east = [[-75.15, 1.2], [-75.0, 1.2], [-75.0, 1.5], [-75.15, 1.5], [-75.15, 1.2]]
    aoi2.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": n}, "geometry": {"type": "Polygon", "coordinates": [c]}}
        for n, c in (("west", west), ("east", east))]}))  # fmt: skip
    cfg = _config({**fixture, "aoi": aoi2}, out, tmp_path / "run.yaml", years=[2019, 2020])
    res = eqi("run", str(cfg))
    assert res.returncode == 1, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "summary: exit 1: 2 done, 0 skipped, 2 failed (west/2020, east/2020)"
    # an interrupted task (its outputs went missing): pending
    (out / "east" / "2019" / "item.json").unlink()
    res = eqi("status", str(out))
    assert res.returncode == 1, res.stderr  # some failed
    lines = res.stdout.strip().splitlines()
    assert lines[-1] == f"1 done, 2 failed, 1 pending ({out})"
    states = {tuple(line.split()[:3]) for line in lines[:-1]}
    assert states == {("done", "west", "2019"), ("pending", "east", "2019"),
                      ("failed", "west", "2020"), ("failed", "east", "2020")}  # fmt: skip
    assert all("no landsat-c2-l2 scene" in line for line in lines if line.startswith("failed"))
    data = json.loads(eqi("status", str(out), "--json").stdout)
    assert data["counts"] == {"done": 1, "failed": 2, "pending": 1} and data["running"] is None
    assert data["last_run"]["summary"]["failed_tasks"] == ["west/2020", "east/2020"]
    # the failure record is no done marker, and goes when the task is done
    record = out / "west" / "2020" / "eqi-failure.json"
    assert record.is_file() and not (out / "west" / "2020" / "item.json").exists()
    assert json.loads(record.read_text())["task_id"].startswith("west_2020_")
    cfg = _config({**fixture, "aoi": aoi2}, out, tmp_path / "run.yaml", years=[2019])
    assert eqi("run", str(cfg)).returncode == 0
    data = json.loads(eqi("status", str(out), "--json").stdout)
    assert data["counts"] == {"done": 2, "failed": 0, "pending": 0}
    res = eqi("status", str(tmp_path / "nowhere"))
    assert res.returncode == 2 and res.stderr.startswith("error:")


# ------------------------------------------------------------------------------ secrets


def test_planted_secrets_appear_in_no_file_or_log(fixture, tmp_path: Path) -> None:
    import secrets as _secrets

    from eqi.io.catalog.archive.parquet import read_archive, write_archive

    sig, cred, amz, tok, tok2 = (f"planted{_secrets.token_hex(10)}" for _ in range(5))
    items = read_archive(fixture["archive"])
    import pystac

    for item in items:  # signed hrefs of assets eqi does not read, and a token in a link
        item.add_asset("thumbnail", pystac.Asset(
            f"https://acct.blob.core.windows.net/c/t.png?st=2026-01-01T00%3A00Z&se=2026-01-02&sp=rl&sv=2021-06-08&sr=c&sig={sig}",
            roles=["thumbnail"]))  # fmt: skip
        item.add_asset("preview", pystac.Asset(
            f"https://bucket.s3.amazonaws.com/p.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={cred}&X-Amz-Signature={amz}",
            roles=["overview"]))  # fmt: skip
        item.add_link(pystac.Link("via", f"https://stac.example/items/{item.id}?token={tok}"))
    signed = write_archive(items, tmp_path / "signed.parquet")
    out = tmp_path / "out"
    log = tmp_path / "log" / "run.log"
    cfg = _config({**fixture, "archive": signed}, out, tmp_path / "run.yaml", log={"level": "debug"})
    runs = [eqi("run", str(cfg), "--log-file", str(log), "--log-format", "json")]
    assert runs[0].returncode == 0, runs[0].stderr
    # a source URL with an API key that cannot be reached: its error is logged
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runs.append(eqi(*_flags(fixture, f"http://127.0.0.1:{port}/stac?token={tok2}", tmp_path / "out2"),
                    "--log-file", str(log)))  # fmt: skip
    assert runs[1].returncode == 2 and "REDACTED" in runs[1].stderr
    files = [p for p in out.rglob("*") if p.is_file()] + [log]
    assert len(files) > 20
    for path in files:
        data = path.read_bytes()
        for planted in (sig, cred, amz, tok, tok2):
            assert planted.encode() not in data, f"{planted} in {path}"
    for res in runs:
        for planted in (sig, cred, amz, tok, tok2):
            assert planted not in res.stdout + res.stderr
    # the paths were exercised: the saved items keep the assets, signatures redacted
    saved = "".join(p.read_text() for p in out.rglob("searches/*.json"))
    assert "sig=REDACTED" in saved and "X-Amz-Signature=REDACTED" in saved and "token=REDACTED" in saved
    assert "token=REDACTED" in log.read_text()
