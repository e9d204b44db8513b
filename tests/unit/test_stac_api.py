"""StacApiCatalog against a real HTTP server on loopback that fails, then answers recorded pages.

The server stands in for a remote STAC API (Earth Search): it serves a landing page and POST
/search, answering with the real recorded search page split into two pages linked by a POST
``next`` link, after failing the first requests of each page with 503 / 429.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from eqi.errors import SourceError
from eqi.io.catalog.stac_api import StacApiCatalog, make_retry

S2_ID = "S2A_13TDE_20231008_0_L2A"
LANDSAT_ID = "LC08_L2SP_033032_20231008_02_T1"
SEARCH = {
    "bbox": (-105.2, 40.1, -105.0, 40.2),
    "datetime": "2023-10-08/2023-10-08",
    "collections": ["sentinel-2-l2a", "landsat-c2-l2"],
}


@dataclass
class FakeApi:
    """State of the loopback server: planned failures and the requests it saw."""

    page: dict
    failures: dict[str, list[int]] = field(default_factory=dict)  # page name -> statuses
    always_fail: int | None = None
    delay: float = 0.0
    requests: list[tuple[str, str, dict]] = field(default_factory=list)
    url: str = ""

    def pages(self) -> dict[str, dict]:
        first, second = copy.deepcopy(self.page), copy.deepcopy(self.page)
        first["features"], second["features"] = self.page["features"][:1], self.page["features"][1:]
        next_link = next(link for link in self.page["links"] if link["rel"] == "next")
        next_link = {**next_link, "href": f"{self.url}/search"}
        next_link["body"] = {**next_link["body"], "next": "page2"}
        first["links"] = [next_link, {"rel": "root", "href": self.url}]
        second["links"] = [{"rel": "root", "href": self.url}]
        return {"page1": first, "page2": second}

    def landing(self) -> dict:
        return {
            "type": "Catalog",
            "id": "fake-earth-search",
            "description": "loopback stand-in for a STAC API",
            "stac_version": "1.0.0",
            "conformsTo": [
                "https://api.stacspec.org/v1.0.0/core",
                "https://api.stacspec.org/v1.0.0/item-search",
            ],
            "links": [
                {"rel": "self", "href": self.url, "type": "application/json"},
                {"rel": "root", "href": self.url, "type": "application/json"},
                {"rel": "search", "href": f"{self.url}/search", "method": "POST",
                 "type": "application/geo+json"},
            ],
        }  # fmt: skip


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            try:
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests): nothing to answer

        def do_GET(self) -> None:
            api.requests.append(("GET", self.path, {}))
            if self.path.rstrip("/") == "":
                self._send(200, api.landing())
            else:
                self._send(404, {"code": "NotFound"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            api.requests.append(("POST", self.path, body))
            time.sleep(api.delay)
            if api.always_fail:
                self._send(api.always_fail, {"code": "ServiceUnavailable"})
                return
            name = "page2" if body.get("next") == "page2" else "page1"
            plan = api.failures.get(name, [])
            if plan:
                status = plan.pop(0)
                self._send(
                    status, {"code": "busy"}, {"Retry-After": "0"} if status == 429 else None
                )
                return
            self._send(200, api.pages()[name])

    return Handler


@pytest.fixture
def fake_api(sample_data: Path) -> Iterator[FakeApi]:
    page = json.loads(
        (
            sample_data / "stac-items/earth-search-v1/search-page_multiple-collections.json"
        ).read_text()
    )
    api = FakeApi(page=page)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


def _catalog(api: FakeApi, **options) -> StacApiCatalog:
    options = {"retries": 3, "backoff_factor": 0.01, "timeout": 5.0, **options}
    return StacApiCatalog(api.url, **options)


def test_search_retries_503_and_429_on_both_pages(fake_api: FakeApi) -> None:
    fake_api.failures = {"page1": [503, 429], "page2": [503, 502]}
    items = _catalog(fake_api).search(**SEARCH)
    assert [item.id for item in items] == [LANDSAT_ID, S2_ID]  # sorted by datetime (17:37 < 18:02)
    posts = [body for method, _, body in fake_api.requests if method == "POST"]
    assert len(posts) == 6  # 2 failures + 1 answer per page
    assert posts[0]["collections"] == SEARCH["collections"]
    assert posts[0]["bbox"] == list(SEARCH["bbox"])
    assert posts[0]["datetime"].startswith("2023-10-08T00:00:00")
    assert posts[-1]["next"] == "page2"  # the POST next link was followed and retried


def test_limit_stops_after_first_items(fake_api: FakeApi) -> None:
    items = _catalog(fake_api).search(**SEARCH, limit=1)
    assert [item.id for item in items] == [S2_ID]
    assert sum(method == "POST" for method, _, _ in fake_api.requests) == 1


def test_permanent_failure_gives_source_error_in_bounded_time(fake_api: FakeApi) -> None:
    fake_api.always_fail = 503
    started = time.monotonic()
    with pytest.raises(SourceError) as info:
        _catalog(fake_api, retries=2).search(**SEARCH)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert fake_api.url in message and "HTTP 503" in message and "retry later" in message
    assert sum(method == "POST" for method, _, _ in fake_api.requests) == 3  # 1 + 2 retries


def test_client_error_is_not_retried(fake_api: FakeApi) -> None:
    fake_api.always_fail = 400
    with pytest.raises(SourceError, match="HTTP 400.*Check the URL"):
        _catalog(fake_api).search(**SEARCH)
    assert sum(method == "POST" for method, _, _ in fake_api.requests) == 1


def test_slow_server_times_out_as_source_error(fake_api: FakeApi) -> None:
    fake_api.delay = 1.0
    started = time.monotonic()
    with pytest.raises(SourceError, match="could not be reached.*network"):
        _catalog(fake_api, retries=1, timeout=0.2).search(**SEARCH)
    assert time.monotonic() - started < 5


def test_unreachable_url_gives_source_error() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    catalog = StacApiCatalog(f"http://127.0.0.1:{port}", retries=1, backoff_factor=0.01, timeout=1)
    with pytest.raises(SourceError, match=rf"127\.0\.0\.1:{port} could not be reached.*network"):
        catalog.search(**SEARCH)


def test_modifier_is_applied_to_every_item(fake_api: FakeApi) -> None:
    seen: list[str] = []

    def mark(page) -> None:  # pystac-client calls it on each page (a FeatureCollection dict)
        for feature in page["features"]:
            seen.append(feature["id"])
            feature["properties"]["signed"] = True

    catalog = _catalog(fake_api, modifier=mark)
    items = catalog.search(**SEARCH)
    assert catalog.client.modifier is mark
    assert sorted(seen) == sorted([S2_ID, LANDSAT_ID])
    assert all(item.properties["signed"] for item in items)


def test_retry_policy() -> None:
    retry = make_retry(4, 0.5, max_retry_after=7)
    assert retry.total == 4 and retry.backoff_factor == 0.5
    assert {429, 500, 502, 503, 504} <= set(retry.status_forcelist)
    assert "POST" in retry.allowed_methods and retry.respect_retry_after_header

    class Answer:
        headers = {"Retry-After": "3600"}

    assert retry.new(total=3).get_retry_after(Answer()) == 7  # a huge Retry-After is capped
