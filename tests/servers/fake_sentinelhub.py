"""A fake Sentinel Hub on 127.0.0.1: OAuth token, Catalog API search and Process API, at HTTP level.

It serves the Sentinel-2 L2A scenes of an eqi stac-geoparquet archive (e.g. the simulated demo
archive), so tests can compare the Sentinel Hub source with the archive source pixel by pixel::

    FAKE_SH_CLIENT_SECRET=... python tests/servers/fake_sentinelhub.py --port 8123 \\
        --archive archive.parquet --client-id my-client [--rate-limit-first 1 --retry-after-ms 1500]

Endpoints (the subset eqi uses, in Sentinel Hub's shapes):

* ``POST /oauth/token`` - client-credentials grant (form body or HTTP Basic); a wrong id or secret
  answers 401 ``{"error": "unauthorized_client", ...}`` as Sentinel Hub's Keycloak does.
* ``POST /api/v1/catalog/1.0.0/search`` - STAC ItemCollection of ``sentinel-2-l2a`` features with
  the ESA product name as id and Sentinel Hub's few properties; paging by ``context.next`` (an
  offset), pages capped at ``--max-page-size``.
* ``POST /api/v1/process`` - JSON request: ``input.bounds`` (bbox + EPSG crs URL),
  ``input.data[0]`` (``sentinel-2-l2a``, ``dataFilter.timeRange``, ``mosaickingOrder``,
  ``processing.harmonizeValues`` default true, NEAREST resampling only), ``output``
  (width/height or resx/resy, one TIFF response) and an evalscript of which only the input band
  list, ``units`` (DN only) and ``sampleType`` (UINT16 only) are read: the fake returns the input
  bands in their order, 0 where ``dataMask`` is 0 (what eqi's evalscript computes; there is no
  JavaScript engine here).  Scenes of the time range are warped onto the requested grid with
  rasterio (nearest) and mosaicked most recent first; with ``harmonizeValues`` true, baseline
  >= 04.00 DNs lose their +1000 offset and are clamped at 0, as Sentinel Hub documents.
  ``--rate-limit-first K`` answers the first K process requests with 429 and ``Retry-After``
  (milliseconds, as Sentinel Hub sends it).
* ``GET /_stats`` - request counters (JSON), for tests.

Every request needs ``Authorization: Bearer <token from /oauth/token>``.  Only request lines
are logged (stderr); bodies, secrets and tokens never.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import rasterio
import rustac
from pyproj import Transformer
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rasterio.warp import Resampling, reproject
from shapely.geometry import box, shape

COLLECTION = "sentinel-2-l2a"
_EPSG_URL = re.compile(r"EPSG/0/(\d+)$")
_BAND_FILE = re.compile(r"(B\d[\dA]|SCL)\.tiff?$", re.IGNORECASE)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Scene:
    """One archive item: Sentinel Hub-style feature plus band files by native name."""

    def __init__(self, feature: dict[str, Any]) -> None:
        props = feature["properties"]
        self.archive_id = feature["id"]
        uri = str(props.get("s2:product_uri") or feature["id"])
        self.id = uri.removesuffix(".SAFE")
        self.datetime = _time(props["datetime"]).replace(microsecond=0)
        self.sensed = _time(props["datetime"])
        self.baseline = float(props.get("s2:processing_baseline") or 0)
        self.geometry = shape(feature["geometry"])
        self.files: dict[str, str] = {}
        for asset in feature.get("assets", {}).values():
            match = _BAND_FILE.search(str(asset.get("href", "")))
            if match:
                self.files[match.group(1).upper()] = asset["href"]
        with rasterio.open(self.files["B04"]) as src:
            self.epsg = src.crs.to_epsg()
            self.bounds = list(src.bounds)
            self.gsd = abs(src.transform.a)
        self.properties = {
            "datetime": self.datetime.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "platform": props.get("platform"),
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "gsd": self.gsd,
            "eo:cloud_cover": props.get("eo:cloud_cover"),
            "proj:epsg": self.epsg,
            "proj:bbox": self.bounds,
            # not a Sentinel Hub property: the fake serves simulated scenes and says so
            "eqi:simulated": bool(props.get("eqi:simulated", False)),
        }

    def feature(self) -> dict[str, Any]:
        return {
            "stac_version": "1.0.0",
            "stac_extensions": [
                "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
                "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
            ],
            "type": "Feature",
            "id": self.id,
            "collection": COLLECTION,
            "bbox": list(self.geometry.bounds),
            "geometry": json.loads(json.dumps(self.geometry.__geo_interface__)),
            "properties": self.properties,
            "assets": {"data": {"href": f"s3://fake-sentinel-s2-l2a/{self.id}/", "title": "s3"}},
            "links": [],
        }


class State:
    """Scenes, issued tokens, counters and the 429 budget (shared by handler threads)."""

    def __init__(self, scenes: list[Scene], args: argparse.Namespace, secret: str) -> None:
        self.scenes = sorted(scenes, key=lambda s: (s.datetime, s.id))
        self.client_id = args.client_id
        self.secret = secret
        self.max_page = args.max_page_size
        self.retry_after_ms = args.retry_after_ms
        self.rate_limited_left = args.rate_limit_first
        self.tokens: set[str] = set()
        self.lock = threading.Lock()
        self.stats = {
            "token_requests": 0,
            "token_refused": 0,
            "catalog_requests": 0,
            "process_requests": 0,
            "process_served": 0,
            "process_rate_limited": 0,
        }

    def count(self, key: str) -> None:
        with self.lock:
            self.stats[key] += 1


class BadRequest(Exception):
    pass


def _parse_grid(body: dict[str, Any]) -> tuple[int, tuple[float, ...], int, int]:
    bounds = body.get("input", {}).get("bounds", {})
    crs = str(bounds.get("properties", {}).get("crs", ""))
    match = _EPSG_URL.search(crs)
    if not match or "bbox" not in bounds:
        raise BadRequest("fake supports input.bounds with bbox and an EPSG crs URL only")
    epsg = int(match.group(1))
    minx, miny, maxx, maxy = (float(v) for v in bounds["bbox"])
    out = body.get("output", {})
    if "width" in out:
        width, height = int(out["width"]), int(out["height"])
    elif "resx" in out:
        width = int(round((maxx - minx) / float(out["resx"])))
        height = int(round((maxy - miny) / float(out["resy"])))
    else:
        raise BadRequest("output needs width/height or resx/resy")
    if not (0 < width <= 2500 and 0 < height <= 2500):
        raise BadRequest("output width and height must be 1..2500 (Sentinel Hub's limit)")
    responses = out.get("responses") or [{"identifier": "default", "format": {"type": "image/tiff"}}]
    if len(responses) != 1 or responses[0].get("format", {}).get("type") != "image/tiff":
        raise BadRequest("fake answers one image/tiff response only")
    return epsg, (minx, miny, maxx, maxy), width, height


def _parse_evalscript(text: str) -> list[str]:
    bands = re.search(r"bands\s*:\s*\[([^\]]*)\]", text)
    units = re.search(r"units\s*:\s*\"(\w+)\"", text)
    sample = re.search(r"sampleType\s*:\s*\"(\w+)\"", text)
    count = re.search(r"output\s*:\s*\{[^}]*bands\s*:\s*(\d+)", text)
    if not text.startswith("//VERSION=3") or not bands:
        raise BadRequest("evalscript must be VERSION=3 with an input band list")
    names = [b.strip().strip("\"'") for b in bands.group(1).split(",") if b.strip()]
    if not units or units.group(1) != "DN":
        raise BadRequest("fake supports units: \"DN\" only")
    if not sample or sample.group(1) != "UINT16":
        raise BadRequest("fake supports sampleType: \"UINT16\" only")
    if not count or int(count.group(1)) != len(names):
        raise BadRequest("output bands must equal the number of input bands")
    return names


def _render(state: State, body: dict[str, Any]) -> bytes:
    epsg, bbox, width, height = _parse_grid(body)
    data = body.get("input", {}).get("data") or []
    if len(data) != 1 or data[0].get("type") != COLLECTION:
        raise BadRequest(f"fake serves one input of type {COLLECTION}")
    source = data[0]
    processing = source.get("processing", {})
    for key in ("upsampling", "downsampling"):
        if processing.get(key, "NEAREST") != "NEAREST":
            raise BadRequest("fake resamples with NEAREST only")
    harmonize = processing.get("harmonizeValues", True)
    time_range = source.get("dataFilter", {}).get("timeRange", {})
    start, end = _time(time_range["from"]), _time(time_range["to"])
    order = source.get("dataFilter", {}).get("mosaickingOrder", "mostRecent")
    names = _parse_evalscript(str(body.get("evalscript", "")))
    unknown = [n for n in names if n != "dataMask" and n != "SCL" and not re.fullmatch(r"B\d[\dA]", n)]
    if unknown:
        raise BadRequest(f"unknown bands {unknown}")
    dst_transform = from_bounds(*bbox, width, height)
    dst_crs = f"EPSG:{epsg}"
    to_wgs84 = Transformer.from_crs(dst_crs, "EPSG:4326", always_xy=True)
    area = box(*to_wgs84.transform_bounds(*bbox, densify_pts=21))
    scenes = [s for s in state.scenes if start <= s.sensed <= end and s.geometry.intersects(area)]
    scenes.sort(key=lambda s: s.sensed, reverse=(order != "leastRecent"))
    out = np.zeros((len(names), height, width), dtype=np.uint16)
    filled = np.zeros((height, width), dtype=bool)
    for scene in scenes:
        with rasterio.open(scene.files["B04"]) as ref:
            ones = np.ones((ref.height, ref.width), dtype=np.uint8)
            mask = np.zeros((height, width), dtype=np.uint8)
            reproject(ones, mask, src_transform=ref.transform, src_crs=ref.crs, src_nodata=None,
                      dst_transform=dst_transform, dst_crs=dst_crs, dst_nodata=0,
                      resampling=Resampling.nearest)  # fmt: skip
        take = (mask > 0) & ~filled
        for index, name in enumerate(names):
            if name == "dataMask":
                values = mask.astype(np.uint16)
            else:
                values = np.zeros((height, width), dtype=np.uint16)
                with rasterio.open(scene.files[name]) as src:
                    reproject(rasterio.band(src, 1), values, src_nodata=0, dst_transform=dst_transform,
                              dst_crs=dst_crs, dst_nodata=0, resampling=Resampling.nearest)  # fmt: skip
                if harmonize and name != "SCL" and scene.baseline >= 4.0:
                    shifted = values.astype(np.int32) - 1000
                    values = np.where(values > 0, np.clip(shifted, 0, None), 0).astype(np.uint16)
            out[index][take] = values[take]
        filled |= mask > 0
    if "dataMask" in names:  # what eqi's evalscript does: every band 0 outside the data
        out[:, ~filled] = 0
    with MemoryFile() as memory:
        with memory.open(driver="GTiff", width=width, height=height, count=len(names),
                         dtype="uint16", crs=dst_crs, transform=dst_transform) as dst:  # fmt: skip
            dst.write(out)
        return memory.read()


def _search(state: State, body: dict[str, Any]) -> dict[str, Any]:
    collections = body.get("collections") or []
    if collections != [COLLECTION]:
        return {"type": "FeatureCollection", "features": [], "links": [], "context": {"limit": 0, "returned": 0}}
    start_text, _, end_text = str(body.get("datetime", "../..")).partition("/")
    start = _time(start_text) if start_text not in ("", "..") else None
    end = _time(end_text) if end_text not in ("", "..") else None
    area = box(*body["bbox"]) if body.get("bbox") else None
    hits = [
        s for s in state.scenes
        if (start is None or s.datetime >= start) and (end is None or s.datetime <= end)
        and (area is None or s.geometry.intersects(area))
    ]  # fmt: skip
    limit = min(int(body.get("limit", 10)), state.max_page)
    offset = int(body.get("next", 0))
    page = hits[offset : offset + limit]
    context: dict[str, Any] = {"limit": limit, "returned": len(page)}
    if offset + limit < len(hits):
        context["next"] = offset + limit
    return {"type": "FeatureCollection", "features": [s.feature() for s in page], "links": [], "context": context}


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # request lines only
            sys.stderr.write(f"fake-sentinelhub {self.address_string()} {format % args}\n")

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(data).encode(), "application/json", headers)

        def _error(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
            self._json(status, {"error": {"status": status, "reason": reason, "message": message}}, headers)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _authorised(self) -> bool:
            value = self.headers.get("Authorization", "")
            if value.startswith("Bearer ") and value[7:] in state.tokens:
                return True
            self._error(401, "Unauthorized", "missing or invalid token")
            return False

        def do_GET(self) -> None:
            if self.path == "/_stats":
                with state.lock:
                    self._json(200, dict(state.stats))
                return
            self._error(404, "Not Found", self.path)

        def do_POST(self) -> None:
            raw = self._body()
            if self.path == "/oauth/token":
                return self._token(raw)
            if not self._authorised():
                return
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                return self._error(400, "Bad Request", "body is not JSON")
            if self.path == "/api/v1/catalog/1.0.0/search":
                state.count("catalog_requests")
                return self._json(200, _search(state, body))
            if self.path == "/api/v1/process":
                return self._process(body)
            self._error(404, "Not Found", self.path)

        def _token(self, raw: bytes) -> None:
            state.count("token_requests")
            form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
            client_id, secret = form.get("client_id"), form.get("client_secret")
            basic = self.headers.get("Authorization", "")
            if basic.startswith("Basic "):
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            ok = (
                form.get("grant_type") == "client_credentials"
                and client_id == state.client_id
                and secret is not None
                and secrets.compare_digest(secret, state.secret)
            )
            if not ok:
                state.count("token_refused")
                return self._json(401, {"error": "unauthorized_client",
                                        "error_description": "Invalid client or Invalid client credentials"})  # fmt: skip
            payload = {"azp": client_id, "sub": "fake-user", "exp": int(time.time()) + 3600}
            token = ".".join([_b64(b'{"alg":"none"}'), _b64(json.dumps(payload).encode()), secrets.token_urlsafe(16)])
            with state.lock:
                state.tokens.add(token)
            self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

        def _process(self, body: dict[str, Any]) -> None:
            state.count("process_requests")
            with state.lock:
                limited = state.rate_limited_left > 0
                if limited:
                    state.rate_limited_left -= 1
                    state.stats["process_rate_limited"] += 1
            if limited:
                return self._error(429, "Too Many Requests", "rate limit exceeded (fake)",
                                   {"Retry-After": str(state.retry_after_ms)})  # fmt: skip
            try:
                content = _render(state, body)
            except (BadRequest, KeyError, TypeError, ValueError) as err:
                return self._error(400, "Bad Request", f"{type(err).__name__}: {err}")
            state.count("process_served")
            self._send(200, content, "image/tiff", {"x-processingunits-spent": "1.0"})

    return Handler


def load_scenes(archive: Path) -> list[Scene]:
    collection = rustac.read_sync(str(archive), format="geoparquet", set_self_link=False)
    return [Scene(f) for f in collection.get("features", []) if f.get("collection") == COLLECTION]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--archive", type=Path, required=True, help="stac-geoparquet archive")
    parser.add_argument("--client-id", default="eqi-test-client")
    parser.add_argument("--max-page-size", type=int, default=100)
    parser.add_argument("--rate-limit-first", type=int, default=0, help="429 for the first K process requests")
    parser.add_argument("--retry-after-ms", type=int, default=1000)
    args = parser.parse_args(argv)
    secret = os.environ.get("FAKE_SH_CLIENT_SECRET")
    if not secret:
        parser.error("set FAKE_SH_CLIENT_SECRET (the secret the fake accepts)")
    state = State(load_scenes(args.archive), args, secret)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state))
    print(f"fake Sentinel Hub on http://127.0.0.1:{args.port} with {len(state.scenes)} scene(s)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
