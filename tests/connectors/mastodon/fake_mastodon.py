"""A small Mastodon server on 127.0.0.1 for the provider's tests and benchmarks.

It speaks the wire format of mastodon/documentation: REST answers with the documented entities (built from the
fixtures in tests/fixtures/connectors/mastodon/), ``min_id``/``since_id``/``max_id`` paging with ``Link`` headers,
``X-RateLimit-*`` headers, ``Idempotency-Key`` on status creation, and the streaming API as server-sent events
(``event:``/``data:`` frames, ``:thump`` heartbeats). Tests script failures (:meth:`FakeMastodon.fail`) and what
each stream connection sends (:meth:`FakeMastodon.script_stream`), and read back every request it got.
"""

from __future__ import annotations

import copy
import html
import itertools
import json
import queue
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "connectors" / "mastodon"
TOKEN = "good-token"
OUR_ID = "14715"  # the account of verify_credentials.json
DROP = object()  # a stream frame: close the connection abruptly


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def customer(account_id: str = "108892712797543112", acct: str = "a@pl.nulled.red", **changes: Any) -> dict[str, Any]:
    account = copy.deepcopy(fixture("stream_notification_mention.json")["account"])
    account.update(id=account_id, acct=acct, username=acct.split("@")[0], **changes)
    return account


def status(status_id: str, text: str = "", *, html_content: str | None = None, author: Mapping[str, Any] | None = None,
           visibility: str = "public", mention_us: bool = False, tags: tuple[str, ...] = (),
           **changes: Any) -> dict[str, Any]:
    """A Status entity shaped like the documentation's, with our own id, text and author."""
    body = copy.deepcopy(fixture("stream_update.json"))
    content = html_content if html_content is not None else f"<p>{html.escape(text)}</p>"
    body.update(
        id=status_id, content=content, visibility=visibility, in_reply_to_id=None, in_reply_to_account_id=None,
        account=dict(author or customer()), url=f"https://pl.nulled.red/objects/{status_id}",
        uri=f"https://pl.nulled.red/objects/{status_id}", language="en",
        created_at="2022-08-30T23:05:46.839Z",
        mentions=[{"id": OUR_ID, "username": "trwnh", "url": "https://mastodon.social/@trwnh", "acct": "trwnh"}]
        if mention_us else [],
        tags=[{"name": t, "url": f"https://mastodon.social/tags/{t}"} for t in tags],
    )
    body.update(changes)
    return body


def mention(notification_id: str, status_body: Mapping[str, Any]) -> dict[str, Any]:
    """A notification of type mention for ``status_body`` (shaped like the documentation's)."""
    body = copy.deepcopy(fixture("stream_notification_mention.json"))
    body.update(id=notification_id, status=dict(status_body), account=dict(status_body["account"]))
    return body


def frame(event: str, data: Any) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


HEARTBEAT = b":thump\n"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)


def _newest_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda s: int(s["id"]), reverse=True)


class FakeMastodon:
    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.tags: dict[str, list[dict[str, Any]]] = {}
        self.public: list[dict[str, Any]] = []
        self.statuses: dict[str, dict[str, Any]] = {}  # parents that can be answered and looked up
        self.posted: list[dict[str, Any]] = []  # statuses created through POST /api/v1/statuses
        self.idempotency: dict[str, dict[str, Any]] = {}
        self.requests: list[Request] = []
        self.max_characters = 500
        self.rate_remaining = 300
        self.failures: list[dict[str, Any]] = []
        self.lose_answer_once = False  # create the next status, then answer 503 as if the answer got lost
        self.published: Counter[str] = Counter()  # statuses created per Idempotency-Key ("" for none)
        self.create_delay = 0.0  # seconds a status creation takes before anything is stored (a slow server)
        self._scripts: dict[str, list[list[Any]]] = {}
        self.live: dict[str, list[queue.Queue[Any]]] = {}
        self.connections: dict[str, int] = {}
        self._ids = itertools.count(200_000_000_000_000_000)
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()  # the key's check and the creation as one step
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    # -- control ---------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeMastodon:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for subscribers in self.live.values():
            for subscriber in subscribers:
                subscriber.put(DROP)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def fail(self, path_prefix: str, status_code: int, headers: Mapping[str, str] | None = None,
             body: Any = None, times: int = 1, after: int = 0) -> None:
        """Answer ``times`` requests under ``path_prefix`` with this error, once ``after`` more have been served."""
        for _ in range(times):
            self.failures.append({"prefix": path_prefix, "status": status_code, "headers": dict(headers or {}),
                                  "body": body, "after": after})

    def script_stream(self, stream: str, *connections: list[Any]) -> None:
        """What each successive connection to ``stream`` ("user", "hashtag:<tag>") sends: frames (bytes) and
        :data:`DROP`; a connection whose script does not end with DROP then waits for :meth:`push`."""
        self._scripts.setdefault(stream, []).extend(list(c) for c in connections)

    def push(self, stream: str, *frames: Any) -> None:
        for subscriber in self.live.get(stream, []):
            for item in frames:
                subscriber.put(item)

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    # -- behaviour -------------------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

        return Handler

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        form: dict[str, str] = {}
        if method == "POST":
            length = int(handler.headers.get("content-length") or 0)
            form = dict(parse_qsl(handler.rfile.read(length).decode()))
        request = Request(method, parts.path, query, {k.lower(): v for k, v in handler.headers.items()}, form)
        with self._lock:
            self.requests.append(request)
            failure = next((f for f in self.failures if parts.path.startswith(f["prefix"])), None)
            if failure and failure["after"]:
                failure["after"] -= 1
                failure = None
            elif failure:
                self.failures.remove(failure)
        if failure:
            body = failure["body"] if failure["body"] is not None else {"error": "Failure"}
            self._json(handler, failure["status"], body, failure["headers"])
            return
        public = parts.path in ("/api/v2/instance", "/api/v1/apps", "/oauth/token")
        if not public and request.headers.get("authorization") != f"Bearer {TOKEN}":
            self._json(handler, 401, {"error": "The access token is invalid"})
            return
        if parts.path.startswith("/api/v1/streaming/"):
            self._stream(handler, parts.path, query)
            return
        try:
            code, body, headers = self._route(request)
        except KeyError:
            code, body, headers = 404, {"error": "Record not found"}, {}
        self._json(handler, code, body, headers)

    def _route(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        path, q = request.path, request.query
        if path == "/api/v2/instance":
            body = fixture("instance_v2.json")
            body["configuration"]["urls"]["streaming"] = self.url.replace("http://", "ws://")
            body["configuration"]["statuses"]["max_characters"] = self.max_characters
            return 200, body, {}
        if path == "/api/v1/accounts/verify_credentials":
            return 200, fixture("verify_credentials.json"), {}
        if path == "/api/v1/notifications":
            items = self.notifications
            if "types[]" in q:
                items = [n for n in items if n["type"] in q["types[]"]]
            return self._page(items, q, path)
        if path == "/api/v1/timelines/public":
            return self._page(self.public, q, path)
        if path.startswith("/api/v1/timelines/tag/"):
            return self._page(self.tags.get(path.rsplit("/", 1)[1], []), q, path)
        if path == "/api/v1/statuses" and request.method == "POST":
            return self._create_status(request)
        if path.startswith("/api/v1/statuses/") and path.endswith("/context"):
            parent = path.split("/")[4]
            if parent not in self.statuses:
                raise KeyError(parent)
            replies = [s for s in self.posted if s["in_reply_to_id"] == parent]
            return 200, {"ancestors": [], "descendants": replies}, {}
        if path.startswith("/api/v1/statuses/"):
            return 200, self.statuses[path.split("/")[4]], {}
        if path == "/api/v1/apps":
            return 200, fixture("apps_create.json"), {}
        if path == "/oauth/token":
            if request.form.get("code") != "the-code" or request.form.get("grant_type") != "authorization_code":
                return 400, {"error": "invalid_grant", "error_description": "The provided authorization grant is "
                             "invalid, expired, revoked, does not match the redirection URI used in the authorization "
                             "request, or was issued to another client."}, {}
            return 200, fixture("oauth_token.json"), {}
        raise KeyError(path)

    def _page(self, items: list[dict[str, Any]], q: dict[str, list[str]], path: str) -> tuple[int, Any, dict[str, str]]:
        limit = min(int(q.get("limit", ["40"])[0]), 80)
        ordered = _newest_first(items)
        if "max_id" in q:
            ordered = [i for i in ordered if int(i["id"]) < int(q["max_id"][0])]
        if "since_id" in q:
            ordered = [i for i in ordered if int(i["id"]) > int(q["since_id"][0])]
        if "min_id" in q:
            newer = [i for i in ordered if int(i["id"]) > int(q["min_id"][0])]
            page = newer[-limit:]  # the ones immediately newer than min_id
        else:
            page = ordered[:limit]
        headers = {}
        if page:
            extra = [(k, v) for k, vs in q.items() if k not in ("limit", "min_id", "max_id", "since_id") for v in vs]
            older = urlencode([("limit", limit), ("max_id", page[-1]["id"]), *extra])
            newer_q = urlencode([("limit", limit), ("min_id", page[0]["id"]), *extra])
            headers["Link"] = f'<{self.url}{path}?{older}>; rel="next", <{self.url}{path}?{newer_q}>; rel="prev"'
        return 200, page, headers

    def _create_status(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        if self.create_delay:
            time.sleep(self.create_delay)
        with self._create_lock:
            return self._create_status_locked(request)

    def _create_status_locked(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        key = request.headers.get("idempotency-key")
        if key and key in self.idempotency:
            return 200, self.idempotency[key], {}
        text = request.form.get("status", "")
        if not text.strip():
            return 422, {"error": "Validation failed: Text can't be blank"}, {}
        if len(text) > self.max_characters:
            return 422, {"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"}, {}
        parent = request.form.get("in_reply_to_id")
        if parent and parent not in self.statuses:
            return 404, {"error": "Record not found"}, {}
        created = status(
            str(next(self._ids)), text, author=fixture("verify_credentials.json"),
            visibility=request.form.get("visibility", "public"), in_reply_to_id=parent or None,
            created_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        )
        self.posted.append(created)
        self.published[key or ""] += 1
        if key:
            self.idempotency[key] = created
        if self.lose_answer_once:
            self.lose_answer_once = False
            return 503, {"error": "Service Unavailable"}, {}
        return 200, created, {}

    def _json(self, handler: BaseHTTPRequestHandler, code: int, body: Any, headers: Mapping[str, str] | None = None,
              ) -> None:
        data = json.dumps(body).encode()
        with self._lock:
            self.rate_remaining = max(0, self.rate_remaining - 1)
            remaining = self.rate_remaining
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        reset = (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        merged = {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": reset}
        merged.update(headers or {})
        for name, value in merged.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _stream(self, handler: BaseHTTPRequestHandler, path: str, q: dict[str, list[str]]) -> None:
        name = path.removeprefix("/api/v1/streaming/")
        if name == "hashtag":
            name = f"hashtag:{q.get('tag', [''])[0]}"
        with self._lock:
            scripts = self._scripts.get(name) or []
            script = scripts.pop(0) if scripts else []
            self.connections[name] = self.connections.get(name, 0) + 1
            inbox: queue.Queue[Any] = queue.Queue()
            self.live.setdefault(name, []).append(inbox)
        try:
            # Close-delimited body (no length, no chunking), as HTTP/1.0 allows: the stream ends when we hang up.
            handler.protocol_version = "HTTP/1.0"
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.send_header("Cache-Control", "private, no-store")
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(b":)\n")
            handler.wfile.flush()
            for item in itertools.chain(script, self._wait(inbox)):
                if item is DROP:
                    handler.connection.shutdown(socket.SHUT_RDWR)
                    return
                handler.wfile.write(item)
                handler.wfile.flush()
        except OSError:
            return
        finally:
            with self._lock:
                self.live[name].remove(inbox)
            handler.close_connection = True

    @staticmethod
    def _wait(inbox: queue.Queue[Any]) -> Iterator[Any]:
        while True:
            yield inbox.get()
