"""A platform double that charges per call, as X does: ``GET /2/users/<id>/mentions`` answers the newest
``max_results`` posts (a timeline, X's v2 shape ``{"data": [...], "meta": {...}}``), with ``since_id`` only the
newer ones; and the adapter for it, which declares X's prices and reports each call's usage."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import httpx

from caredesk.connectors.base import (
    Capability,
    FetchResult,
    NormalizedAuthor,
    NormalizedPost,
    OutboundReply,
    Provider,
    ProviderConfig,
    SentReply,
)
from caredesk.connectors.costs.prices import DEFAULT_X_PRICES, Operation, UsageEvent


class PaidPlatform:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.created: list[dict[str, Any]] = []  # POST /2/tweets bodies
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def post(self, n: int = 1) -> None:
        with self.lock:
            for _ in range(n):
                i = len(self.posts) + 1
                self.posts.append({"id": str(1000 + i), "text": f"@NimbusCare my router is down ({i})",
                                   "author_id": f"u{i}", "created_at": "2026-11-23T11:00:00.000Z"})

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def _handler(platform: PaidPlatform) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            platform.requests.append(url.path)
            since = int(query.get("since_id", "0"))
            limit = int(query.get("max_results", "10"))
            with platform.lock:
                newer = [p for p in platform.posts if int(p["id"]) > since]
            page = list(reversed(newer))[:limit]  # newest first, as X answers
            body: dict[str, Any] = {"data": page, "meta": {"result_count": len(page)}}
            if page:
                body["meta"]["newest_id"] = page[0]["id"]
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            platform.requests.append(self.path)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            with platform.lock:
                platform.created.append(body)
                data = json.dumps({"data": {"id": str(9000 + len(platform.created)), "text": body["text"]}}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def running_paid_platform() -> Iterator[PaidPlatform]:
    platform = PaidPlatform()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(platform))
    server.daemon_threads = True
    platform.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield platform
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class PaidConfig(ProviderConfig):
    url: str
    user_id: str = "brand-nimbus"
    max_results: int = 10
    # False: poll the timeline without since_id (every poll returns the newest page again: the daily
    # de-duplication is what keeps that affordable).
    since_id: bool = True


class PaidTestProvider(Provider[PaidConfig]):
    key = "test_paid"
    display_name = "Test paid platform"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.POLL, Capability.REPLY})
    config_model = PaidConfig
    prices = DEFAULT_X_PRICES

    @property
    def platform(self) -> str:
        return "testpaid"

    def fetch(self, cursor: Mapping[str, Any], now: datetime) -> FetchResult:
        assert self.http is not None
        params: dict[str, Any] = {"max_results": self.config.max_results}
        if self.config.since_id and cursor.get("since_id"):
            params["since_id"] = cursor["since_id"]
        response = self.http.get(f"{self.config.url}/2/users/{self.config.user_id}/mentions", params=params)
        response.raise_for_status()
        body = response.json()
        data = body.get("data", [])
        posts = [
            NormalizedPost(
                external_id=p["id"], author=NormalizedAuthor(p["author_id"], p["author_id"]), text=p["text"],
                created_at=datetime.fromisoformat(p["created_at"].replace("Z", "+00:00")).astimezone(UTC),
            )
            for p in data
        ]
        newest = body.get("meta", {}).get("newest_id") or cursor.get("since_id")
        # The brand's own mentions timeline is an owned read on X.
        usage = [UsageEvent(Operation.OWNED_READ, now, tuple(p["id"] for p in data))] if data else []
        return FetchResult(posts=posts, cursor={"since_id": newest} if newest else {}, usage=usage)

    def send_reply(self, reply: OutboundReply, now: datetime) -> SentReply:
        body = {"text": reply.text, "reply": {"in_reply_to_tweet_id": reply.in_reply_to_external_id}}
        if self.http is not None:
            response = self.http.post(f"{self.config.url}/2/tweets", json=body)
        else:  # the outbox's tests call the send without a client of their own
            with httpx.Client(timeout=5) as http:
                response = http.post(f"{self.config.url}/2/tweets", json=body)
        response.raise_for_status()
        return SentReply(external_id=response.json()["data"]["id"], created_at=now)
