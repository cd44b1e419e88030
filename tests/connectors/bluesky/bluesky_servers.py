"""Local stand-ins for Bluesky, speaking its wire formats on 127.0.0.1: a PDS (XRPC over HTTP, with sessions,
record keys that cannot be written twice, notifications and chat) and a Jetstream v1 ``/subscribe`` websocket that
honours ``cursor``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import threading
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve

TID_RE = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
BRAND_DID = "did:plc:brand7acmecare4testing00"
BRAND_HANDLE = "acme.example.com"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "connectors" / "bluesky"
ProviderFactory = Callable[..., Any]  # conftest's make_provider: (credentials=None, **config) -> BlueskyProvider


def graphemes(text: str) -> int:
    """The server's own rough count, independent of caredesk's: combining marks, ZWJ sequences, variation
    selectors, skin tones and regional-indicator pairs join the character before them."""
    count, joined, flag_half = 0, False, False
    for char in text:
        code = ord(char)
        flag = 0x1F1E6 <= code <= 0x1F1FF
        joins = joined or unicodedata.combining(char) or char in "\ufe0f\u200d" or 0x1F3FB <= code <= 0x1F3FF
        if flag and flag_half:
            joins, flag_half = True, False
        else:
            flag_half = flag
        if not (count and joins):
            count += 1
        joined = char == "\u200d"
    return count


@dataclass
class Pds:
    """The state of the fake PDS; tests read and script it."""

    records: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)  # newest first, as Bluesky lists them
    access: set[str] = field(default_factory=set)
    expired: set[str] = field(default_factory=set)
    refresh: set[str] = field(default_factory=set)
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    faults: dict[str, list[tuple[int, dict[str, str], dict[str, Any]]]] = field(default_factory=dict)
    lose_answer: set[str] = field(default_factory=set)  # methods whose next answer is lost after doing the work
    messages: list[dict[str, Any]] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # what the appview knows, by DID
    created: Counter[str] = field(default_factory=Counter)  # records written by createRecord, per record key
    create_delay: float = 0.0  # seconds a createRecord takes before anything is stored (a slow server)
    serial: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new_tokens(self) -> dict[str, str]:
        self.serial += 1
        access, refresh = f"access-{self.serial}", f"refresh-{self.serial}"
        self.access.add(access)
        self.refresh.add(refresh)
        return {"accessJwt": access, "refreshJwt": refresh, "did": BRAND_DID, "handle": BRAND_HANDLE}

    def expire_all(self) -> None:
        self.expired |= self.access
        self.access.clear()

    def add_record(self, repo: str, rkey: str, value: dict[str, Any]) -> dict[str, Any]:
        uri = f"at://{repo}/{value.get('$type', 'app.bsky.feed.post')}/{rkey}"
        # A CIDv1 (dag-cbor, sha2-256) in base32, the shape a PDS returns (of the JSON here, not of the CBOR).
        digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
        cid = "b" + base64.b32encode(bytes([1, 0x71, 0x12, 0x20]) + digest).decode().lower().rstrip("=")
        entry = {"uri": uri, "cid": cid, "value": value}
        self.records[(repo, "app.bsky.feed.post", rkey)] = entry
        return entry

    def posts_by(self, repo: str) -> list[dict[str, Any]]:
        return [r for (did, _, _), r in self.records.items() if did == repo]


def _answer(handler: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(data)))
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.write(data)


def _error(handler: BaseHTTPRequestHandler, status: int, error: str, message: str) -> None:
    _answer(handler, status, {"error": error, "message": message})


class XrpcHandler(BaseHTTPRequestHandler):
    server: PdsServer  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch(None)

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            _error(self, 400, "InvalidRequest", "body is not JSON")
            return
        self._dispatch(body)

    def _dispatch(self, body: Any) -> None:
        pds = self.server.pds
        parts = urlsplit(self.path)
        method = parts.path.removeprefix("/xrpc/")
        query = parse_qs(parts.query)
        if method == "com.atproto.repo.createRecord" and pds.create_delay:
            time.sleep(pds.create_delay)  # outside the lock: polls and lookups go on meanwhile
        with pds.lock:
            pds.calls[method] += 1
            scripted = pds.faults.get(method)
            if scripted:
                status, headers, payload = scripted.pop(0)
                _answer(self, status, payload, headers)
                return
            answer = self._handle(pds, method, query, body)
            if answer is None:
                return
            if method in pds.lose_answer:
                pds.lose_answer.discard(method)
                self.close_connection = True
                self.connection.close()  # the work is done, the answer never arrives
                return
            _answer(self, *answer)

    def _handle(self, pds: Pds, method: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any] | None:
        token = (self.headers.get("authorization") or "").removeprefix("Bearer ")
        if method == "com.atproto.server.createSession":
            if body.get("identifier") in (BRAND_HANDLE, BRAND_DID) and body.get("password") == APP_PASSWORD:
                return 200, pds.new_tokens()
            return 401, {"error": "AuthenticationRequired", "message": "Invalid identifier or password"}
        if method == "com.atproto.server.refreshSession":
            if token in pds.refresh:
                pds.refresh.discard(token)  # refresh tokens rotate: each works once
                return 200, pds.new_tokens()
            return 400, {"error": "ExpiredToken", "message": "Token has expired"}
        if method == "app.bsky.actor.getProfiles":  # the appview's, public
            actors = query.get("actors", [])
            if len(actors) > 25:
                return 400, {"error": "InvalidRequest", "message": "actors must not have more than 25 elements"}
            return 200, {"profiles": [pds.profiles[a] for a in actors if a in pds.profiles]}
        if method == "com.atproto.identity.resolveHandle":
            if query.get("handle") == [BRAND_HANDLE]:
                return 200, {"did": BRAND_DID}
            return 400, {"error": "HandleNotFound", "message": "Unable to resolve handle"}
        if token in pds.expired:
            return 400, {"error": "ExpiredToken", "message": "Token has expired"}
        if token not in pds.access:
            return 401, {"error": "InvalidToken", "message": "Token could not be verified"}
        if method == "com.atproto.server.getSession":
            return 200, {"did": BRAND_DID, "handle": BRAND_HANDLE}
        if method == "com.atproto.repo.getRecord":
            key = (query["repo"][0], query["collection"][0], query["rkey"][0])
            if key not in pds.records:
                return 400, {"error": "RecordNotFound", "message": f"Could not locate record: {key}"}
            return 200, pds.records[key]
        if method == "com.atproto.repo.createRecord":
            return self._create(pds, body)
        if method == "app.bsky.notification.listNotifications":
            limit = int(query.get("limit", ["50"])[0])
            start = int(query.get("cursor", ["0"])[0])
            reasons = set(query.get("reasons", []))
            items = [n for n in pds.notifications if not reasons or n["reason"] in reasons]
            page = items[start:start + limit]
            out: dict[str, Any] = {"notifications": page}
            if start + limit < len(items):
                out["cursor"] = str(start + limit)
            return 200, out
        if method.startswith("chat.bsky."):
            if self.headers.get("atproto-proxy") != "did:web:api.bsky.chat#bsky_chat":
                return 400, {"error": "InvalidRequest", "message": "chat methods need the atproto-proxy header"}
            if method == "chat.bsky.convo.getConvoForMembers":
                return 200, {"convo": {"id": "convo-" + query["members"][0][-6:], "members": []}}
            if method == "chat.bsky.convo.sendMessage":
                message = {"id": f"msg-{len(pds.messages) + 1}", "sentAt": "2026-11-23T12:00:01.000Z",
                           "convoId": body["convoId"], **body["message"]}
                pds.messages.append(message)
                return 200, message
        return 501, {"error": "MethodNotImplemented", "message": method}

    def _create(self, pds: Pds, body: Any) -> tuple[int, Any]:
        repo, collection, rkey, record = body.get("repo"), body.get("collection"), body.get("rkey"), body.get("record")
        if repo != BRAND_DID:
            return 401, {"error": "InvalidToken", "message": "cannot write to another repo"}
        if collection != "app.bsky.feed.post" or not isinstance(record, dict):
            return 400, {"error": "InvalidRequest", "message": "Input/collection must be a known lexicon"}
        if not isinstance(rkey, str) or not TID_RE.match(rkey):
            return 400, {"error": "InvalidRequest", "message": f"Invalid record key for app.bsky.feed.post: {rkey}"}
        text = record.get("text", "")
        if graphemes(text) > 300 or len(text.encode()) > 3000:
            return 400, {"error": "InvalidRequest",
                         "message": "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 "
                                    "graphemes"}
        if (repo, collection, rkey) in pds.records:
            # What @atproto/pds 0.5.35 answers: its MST throws "There is already a value at key", a plain Error.
            return 500, {"error": "InternalServerError", "message": "Internal Server Error"}
        entry = pds.add_record(repo, rkey, record)
        pds.created[rkey] += 1
        return 200, {"uri": entry["uri"], "cid": entry["cid"]}


class PdsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, pds: Pds) -> None:
        super().__init__(("127.0.0.1", 0), XrpcHandler)
        self.pds = pds

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def running_pds(pds: Pds | None = None) -> Iterator[PdsServer]:
    server = PdsServer(pds or Pds())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Jetstream:
    """Lines to play (with the time_us each is filed under, so malformed lines follow the cursor too)."""

    lines: list[tuple[int, str]] = field(default_factory=list)
    drop_after: list[int] = field(default_factory=list)  # per connection: abort after this many lines
    close_at_end: bool = True
    requests: list[dict[str, list[str]]] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, raw_lines: list[str], **kw: Any) -> Jetstream:
        filed, last = [], 0
        for line in raw_lines:
            try:
                last = int(json.loads(line)["time_us"])
            except (ValueError, KeyError, TypeError):
                pass
            filed.append((last, line))
        return cls(lines=filed, **kw)

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        parts = urlsplit(ws.request.path)
        query = parse_qs(parts.query)
        self.requests.append(query)
        if parts.path != "/subscribe":
            await ws.close(1008, "not found")
            return
        cursor = int(query.get("cursor", ["0"])[0])
        limit = self.drop_after.pop(0) if self.drop_after else None
        count = 0
        for time_us, line in self.lines:
            if time_us < cursor:
                continue
            if limit is not None and count >= limit:
                ws.transport.abort()  # a dropped connection, no close frame
                return
            await ws.send(line)
            count += 1
        self.sent.append(count)
        if self.close_at_end:
            await ws.close(1000)
        else:
            await ws.wait_closed()


@contextmanager
def running_jetstream(jetstream: Jetstream) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        async with serve(jetstream.handler, "127.0.0.1", 0, compression=None) as server:
            holder["port"] = server.sockets[0].getsockname()[1]
            holder["stop"] = asyncio.Event()
            ready.set()
            await holder["stop"].wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"ws://127.0.0.1:{holder['port']}/subscribe"
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
        loop.close()
