"""A static HTTP file server on 127.0.0.1 that answers HEAD and single ``Range`` GETs (206), as
object stores do, so GDAL's ``/vsicurl/`` reads COGs from it block by block::

    python tests/servers/range_file_server.py --root DIR --port 0 --port-file PORT_FILE

``--port 0`` picks a free port, written to ``--port-file`` once the server listens.  A file that is
moved away answers 404 until it is back.  Request lines are logged to stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root: Path = Path(".")

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stderr.write("files: " + fmt % args + "\n")

    def _path(self) -> Path | None:
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        path = (self.root / rel).resolve()
        if self.root not in path.parents or not path.is_file():
            return None
        return path

    def _send(self, status: int, body: bytes, headers: dict[str, str], *, head: bool) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _serve(self, *, head: bool) -> None:
        path = self._path()
        if path is None:
            self._send(404, b"not found", {"Content-Type": "text/plain"}, head=head)
            return
        size = path.stat().st_size
        spec = self.headers.get("Range")
        if spec is None:
            self._send(200, path.read_bytes(), {"Accept-Ranges": "bytes", "Content-Type": "image/tiff"}, head=head)
            return
        match = _RANGE.match(spec.strip())
        if match is None or not (match.group(1) or match.group(2)):
            self._send(416, b"", {"Content-Range": f"bytes */{size}"}, head=head)
            return
        if match.group(1):
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
        else:  # a suffix range: the last N bytes
            start, end = max(size - int(match.group(2)), 0), size - 1
        if start >= size or start > end:
            self._send(416, b"", {"Content-Range": f"bytes */{size}"}, head=head)
            return
        with path.open("rb") as fh:
            fh.seek(start)
            body = fh.read(end - start + 1)
        self._send(206, body, {"Accept-Ranges": "bytes", "Content-Type": "image/tiff",
                               "Content-Range": f"bytes {start}-{end}/{size}"}, head=head)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        path = self._path()
        if path is None:
            self._send(404, b"", {}, head=True)
            return
        self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args()
    Handler.root = args.root.resolve()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
