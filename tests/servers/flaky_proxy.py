"""A reverse HTTP proxy on 127.0.0.1 that fails a seeded share of the requests it forwards::

    python tests/servers/flaky_proxy.py --upstream http://127.0.0.1:8000 --port-file PORT_FILE \\
        --fail 0.3 --fail-ranges 0.3 --seed 11

Each request is forwarded to ``--upstream`` (same path, method, headers and body), except a share
of them, drawn from ``random.Random(seed)`` in arrival order: ``--fail`` of the requests without a
``Range`` header (STAC API searches, HEADs) and ``--fail-ranges`` of the range reads of files.  A
failed request is answered either ``503 Service Unavailable`` or by dropping the connection (a TCP
reset, the "connection reset by peer" clients see when a load balancer drops them), half and half.
``GET /_proxy_stats`` answers the counters as JSON; ``GET /_proxy_set?fail=0&fail_ranges=0``
changes the shares (a test's clean run through the same URLs), ``GET /_proxy_set?fail_next_ranges=N``
answers the next N range reads 503 whatever the shares.  Request lines go to stderr.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


class Faults:
    """Seeded fault decisions, shared by the handler threads."""

    def __init__(self, seed: int, fail: float, fail_ranges: float) -> None:
        self.rng = random.Random(seed)
        self.fail, self.fail_ranges = fail, fail_ranges
        self.fail_next_ranges = 0
        self.lock = threading.Lock()
        self.stats = {"requests": 0, "range_requests": 0, "answered_503": 0, "dropped": 0}

    def draw(self, is_range: bool) -> str | None:
        """None (forward), ``"503"`` or ``"drop"``."""
        with self.lock:
            self.stats["requests"] += 1
            self.stats["range_requests"] += is_range
            if is_range and self.fail_next_ranges > 0:
                self.fail_next_ranges -= 1
                self.stats["answered_503"] += 1
                return "503"
            share = self.fail_ranges if is_range else self.fail
            if self.rng.random() >= share:
                return None
            fault = "503" if self.rng.random() < 0.5 else "drop"
            self.stats["answered_503" if fault == "503" else "dropped"] += 1
            return fault


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream: tuple[str, int] = ("127.0.0.1", 80)
    faults: Faults

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write("proxy: " + fmt % args + "\n")

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _drop(self) -> None:
        """Close with a TCP reset (SO_LINGER 0) and no answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _forward(self) -> None:
        if urlsplit(self.path).path == "/_proxy_set":
            query = parse_qs(urlsplit(self.path).query)
            with self.faults.lock:
                self.faults.fail = float(query.get("fail", [self.faults.fail])[0])
                self.faults.fail_ranges = float(query.get("fail_ranges", [self.faults.fail_ranges])[0])
                self.faults.fail_next_ranges = int(query.get("fail_next_ranges", [self.faults.fail_next_ranges])[0])
            self._reply(200, b"ok")
            return
        if urlsplit(self.path).path == "/_proxy_stats":
            with self.faults.lock:
                self._reply(200, json.dumps(self.faults.stats).encode(), "application/json")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        fault = self.faults.draw("Range" in self.headers)
        if fault == "503":
            self._reply(503, b"injected failure")
            return
        if fault == "drop":
            self._drop()
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            headers["Host"] = f"{self.upstream[0]}:{self.upstream[1]}"
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status, answer.reason)
            for key, value in answer.getheaders():
                if key.lower() not in _HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            # a HEAD answer has no body but the length of the body a GET would have
            self.send_header("Content-Length", answer.getheader("Content-Length", "0")
                             if self.command == "HEAD" else str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            conn.close()

    do_GET = do_POST = do_HEAD = _forward  # noqa: N815 - http.server's naming


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="http://host:port")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--fail", type=float, default=0.3, help="share of other requests failed")
    parser.add_argument("--fail-ranges", type=float, default=0.3, help="share of range reads failed")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    up = urlsplit(args.upstream)
    Handler.upstream = (up.hostname or "127.0.0.1", up.port or 80)
    Handler.faults = Faults(args.seed, args.fail, args.fail_ranges)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
