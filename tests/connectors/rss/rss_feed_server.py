"""A real HTTP server on 127.0.0.1 serving feeds, for the RSS provider's tests and benchmark.

Each path answers with a :class:`Route`: a body with its validators (answering 304 to a request whose
If-None-Match or If-Modified-Since matches, as a web server does) or any status and headers. Every request is
recorded with its headers, so a test can check what the provider sent.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "connectors" / "rss"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str = ""
    last_modified: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False  # send without Content-Length, in chunks (a body whose size is known only at the end)


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]


class FeedServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route | Callable[[Seen], Route]] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
                # client's delayed ACK of the first (40 ms a response on Linux).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                seen = Seen(self.path, {k.lower(): v for k, v in self.headers.items()})
                with server._lock:
                    server.requests.append(seen)
                    route = server.routes.get(self.path)
                if callable(route):
                    route = route(seen)
                if route is None:
                    route = Route(b"not found", status=404, content_type="text/plain")
                status = route.status
                if status == 200 and (
                    (route.etag and seen.headers.get("if-none-match") == route.etag)
                    or (route.last_modified and seen.headers.get("if-modified-since") == route.last_modified)
                ):
                    status = 304
                self.send_response(status)
                if route.etag:
                    self.send_header("ETag", route.etag)
                if route.last_modified:
                    self.send_header("Last-Modified", route.last_modified)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                body = b"" if status == 304 else route.body
                if status != 304:
                    self.send_header("Content-Type", route.content_type)
                if route.chunked and body:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(body), 64 * 1024):
                        piece = body[start: start + 64 * 1024]
                        try:
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        except OSError:  # the client gave up on an oversize body, as it should
                            return
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    return

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def serve(self, path: str, route: Route | Callable[[Seen], Route]) -> str:
        self.routes[path] = route
        return self.url(path)

    def requests_for(self, path: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@contextmanager
def running() -> Iterator[FeedServer]:
    server = FeedServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
