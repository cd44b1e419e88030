"""A platform double for the runtime's tests: a local HTTP server speaking a small streaming wire format.

Wire format (defined here; modelled on Server-Sent Events streams such as Mastodon's streaming API):

* ``GET /stream?after=N`` with ``Authorization: Bearer TOKEN``. A token the server does not know: ``401`` with
  ``{"error": "invalid token"}``. While the server is rate limiting: ``429`` with ``Retry-After: SECONDS``.
* Otherwise ``200``, ``Content-Type: text/event-stream``, chunked: every event with ``seq > N`` in order, then new
  ones as they are published, with a ``: keep-alive`` comment each half second. One event::

      id: 7
      event: post            (or "edit", "delete")
      data: {"id": "p7", "author": {"id": "u1", "handle": "casey", "name": "Casey"}, "text": "...",
             "created_at": "2026-11-23T12:00:00+00:00", "published_at": 1700000000.123}

  ``delete`` events carry only ``{"id": ..., "published_at": ...}``; a ``token`` event ``{"token": NEW}`` hands
  the client a new token, the only one accepted from then on. ``published_at``: the server's clock
  (``time.time()``) when the event was published, for the delay benchmark.
* A *drop* ends a connection abruptly after a number of events (the socket closes inside the chunked body), as a
  network cut or a platform restart does. A *graceful end* closes it with the final chunk.

While ``stream_refusal`` is set, ``/stream`` answers ``403`` with ``{"title": "Client Forbidden", "detail": ...}``
(the shape of X's answer to an app not enrolled in a product); while ``unavailable`` counts down, ``503``;
while ``poll_refusal`` is set, ``/posts`` answers the same 403.

A second endpoint serves the poll tests: ``GET /posts?after=N`` answers ``{"posts": [...], "next": M}`` with the
same post objects and ``X-RateLimit-Remaining: R`` (or the same 401 / 429).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class Platform:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []  # each {"seq", "kind", "data"}
        self.tokens = {"good-token"}
        self.rate_limited = 0  # how many requests to answer 429 next
        self.retry_after = 1
        self.remaining = 300  # requests left in the poll API's window (X-RateLimit-Remaining)
        self.drops: list[int] = []  # for the next connections, in order: drop after that many events
        self.requests: list[tuple[str, int]] = []  # (path, after) of every request
        self.request_times: list[float] = []  # time.time() of every request
        self.connections = 0  # streams opened (200s)
        self.open_streams = 0  # streams open now
        self.sent: list[int] = []  # the seq of every event sent on a stream, in order
        self.stream_refusal: str | None = None  # while set: GET /stream answers 403 with this error
        self.unavailable = 0  # how many stream requests to answer 503 next
        self.poll_refusal: str | None = None  # while set: GET /posts answers 403 with this error
        self.changed = threading.Condition()
        self.server: ThreadingHTTPServer | None = None
        self.closing = False

    # --- what the test does on the platform

    def post(self, external_id: str, text: str, *, author: str = "u1", created_at: datetime | None = None,
             kind: str = "post") -> int:
        created = created_at or datetime.now(UTC)
        data = {"id": external_id, "author": {"id": author, "handle": f"user{author}", "name": f"User {author}"},
                "text": text, "created_at": created.isoformat()}
        return self._publish(kind, data)

    def edit(self, external_id: str, text: str, **kw: Any) -> int:
        return self.post(external_id, text, kind="edit", **kw)

    def delete(self, external_id: str) -> int:
        return self._publish("delete", {"id": external_id})

    def rotate_token(self, new: str) -> int:
        """The platform issues a new token (as an OAuth refresh does) and stops accepting the old ones."""
        seq = self._publish("token", {"token": new})
        self.tokens = {new}
        return seq

    def _publish(self, kind: str, data: dict[str, Any]) -> int:
        with self.changed:
            seq = len(self.events) + 1
            self.events.append({"seq": seq, "kind": kind, "data": {**data, "published_at": time.time()}})
            self.changed.notify_all()
        return seq

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stream_afters(self) -> list[int]:
        return [after for path, after in self.requests if path == "/stream"]


def _handler(platform: Platform) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(raw)

        def _refused(self) -> bool:
            if self.headers.get("Authorization", "").removeprefix("Bearer ") not in platform.tokens:
                self._json(401, {"error": "invalid token"})
                return True
            if platform.rate_limited > 0:
                platform.rate_limited -= 1
                self._json(429, {"error": "slow down"}, {"Retry-After": str(platform.retry_after)})
                return True
            return False

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            after = int(parse_qs(url.query).get("after", ["0"])[0])
            platform.requests.append((url.path, after))
            platform.request_times.append(time.time())
            if self._refused():
                return
            if url.path == "/posts" and platform.poll_refusal is not None:
                self._json(403, {"title": "Client Forbidden", "detail": platform.poll_refusal})
                return
            if url.path == "/posts":
                events = [e for e in platform.events if e["seq"] > after and e["kind"] == "post"]
                platform.remaining -= 1
                self._json(200, {"posts": [{**e["data"], "seq": e["seq"]} for e in events],
                                 "next": max((e["seq"] for e in events), default=after)},
                           {"X-RateLimit-Remaining": str(platform.remaining)})
                return
            if url.path != "/stream":
                self._json(404, {"error": "not found"})
                return
            if platform.stream_refusal is not None:  # as X answers an app not enrolled for a product
                self._json(403, {"title": "Client Forbidden", "detail": platform.stream_refusal})
                return
            if platform.unavailable > 0:
                platform.unavailable -= 1
                self._json(503, {"error": "over capacity"})
                return
            platform.open_streams += 1
            try:
                self._stream(after)
            finally:
                platform.open_streams -= 1

        def _chunk(self, text: str) -> None:
            raw = text.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
            self.wfile.flush()

        def _stream(self, after: int) -> None:
            drop = platform.drops.pop(0) if platform.drops else None
            platform.connections += 1
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            sent = 0
            position = after
            try:
                while not platform.closing:
                    with platform.changed:
                        fresh = [e for e in platform.events if e["seq"] > position]
                        if not fresh:
                            platform.changed.wait(0.5)
                            fresh = [e for e in platform.events if e["seq"] > position]
                    if not fresh:
                        self._chunk(": keep-alive\n\n")
                        continue
                    for event in fresh:
                        self._chunk(f"id: {event['seq']}\nevent: {event['kind']}\n"
                                    f"data: {json.dumps(event['data'])}\n\n")
                        platform.sent.append(event["seq"])
                        position = event["seq"]
                        sent += 1
                        if drop is not None and sent >= drop:
                            self.close_connection = True
                            self.connection.shutdown(2)  # abrupt: no final chunk
                            return
                self.wfile.write(b"0\r\n\r\n")  # the server shuts down: a graceful end
            except OSError:
                pass  # the client went away
            self.close_connection = True

    return Handler


@contextmanager
def running_platform() -> Iterator[Platform]:
    platform = Platform()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(platform))
    server.daemon_threads = True
    platform.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield platform
    finally:
        platform.closing = True
        with platform.changed:
            platform.changed.notify_all()
        server.shutdown()
        server.server_close()
        thread.join()
