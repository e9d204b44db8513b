"""Support for the report tests: a small finished run, external tools, a DevTools client.

``small_run(out)`` is a demo-sized finished run: the offline simulator over two real adjacent
Chengdu districts (锦江区 510104, 青羊区 510105) at 120 m, two years, land cover reclassified from
the simulated reference (no classifier), so it takes ~20 s.  ``Chromium`` drives Debian's headless
chromium over the DevTools protocol (websockets) and records console errors and network requests.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

REGIONS = ("jinjiang-510104", "qingyang-510105")
NAMES_ZH = {"jinjiang-510104": "锦江区", "qingyang-510105": "青羊区"}
YEARS = (2022, 2023)


def small_run(out: Path) -> Path:
    """Simulate, index and run a two-county, two-year job into ``out``; returns ``out``."""
    from shapely.ops import unary_union

    from eqi.config import load_config
    from eqi.demo.simulate import simulate_archive
    from eqi.geo.regions import load_regions
    from eqi.io.catalog.archive import index_archive
    from eqi.pipeline.cluster import dask_context
    from eqi.pipeline.run import run

    out.mkdir(parents=True, exist_ok=True)
    regions = load_regions("sichuan:510104,510105")
    sim = simulate_archive(unary_union([r.geometry for r in regions]), out / "archive", region_name="jinjiang-qingyang",
                           years=YEARS, resolution_m=120.0, overwrite=True)
    index_archive([sim.scenes_dir], out / "archive.parquet")
    config = {
        "title": "report test <two counties> & 'quotes' (SIMULATED)", "source": "archive.parquet",
        "collections": ["landsat-c2-l2", "sentinel-2-l2a"], "aoi": "sichuan:510104,510105", "years": list(YEARS),
        "season": "06-01/09-30", "crs": "albers-china", "resolution": 120, "tile_size": 512,
        "products": ["ndvi", "fvc", "rsei", "rsei_grade", "landcover"], "out": ".", "simulated": True,
        "landcover": {"reference": "archive/reference/truth_landcover_{year}.tif", "product": "esa-worldcover",
                      "mode": "reclassify"},
    }  # fmt: skip
    (out / "run.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    with dask_context(None, None):
        results = run(load_config(out / "run.yaml"), overwrite=True, progress=lambda _m: None)
    assert {r.status for r in results} == {"done"}, results
    return out


def need_tool(name: str) -> str:
    """Path of an external program; fail under CI, skip elsewhere, when it is missing."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
    if path is None:
        message = f"{name} not installed (Debian package; `make system-deps`)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def distinct_colours(png: bytes) -> int:
    """Number of distinct RGB colours of a PNG."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return len(image.getcolors(maxcolors=1 << 24))


class Chromium:
    """Headless chromium with the DevTools protocol: open a page, collect errors and requests."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
             "--disable-extensions", f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "--remote-debugging-address=127.0.0.1", "--window-size=1200,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        from websockets.sync.client import connect

        self.ws = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)

    def call(self, method: str, session: bool = False, timeout: float = 60, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event.get("method") == method:
                return event
        while time.monotonic() < deadline:
            event = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            self.events.append(event)
            if event.get("method") == method:
                return event
        raise TimeoutError(method)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)["result"].get("value")

    def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.call("Page.captureScreenshot", session=True, **params)["data"])

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(str(p.get("exceptionDetails")))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
                out.append(str(p.get("args")))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
                out.append(str(p["entry"].get("text")))
            elif m == "Network.loadingFailed":
                out.append(f"loading failed: {p}")
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
