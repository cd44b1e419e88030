"""A small Reddit server on 127.0.0.1 for the Reddit provider's tests, speaking Reddit's wire format.

It answers POST /api/v1/access_token (password, refresh token and authorization code grants, HTTP Basic with the
app's client id and secret: 401 on a wrong secret, 200 ``{"error": "invalid_grant"}`` on a wrong password, as
Reddit does), GET /api/v1/me, the listings /message/inbox, /message/mentions, /message/sent, /r/{sub}/new,
/r/{sub}/search and /user/{name}/comments (newest first, ``limit``, ``after`` paging), and POST /api/comment
(``json.errors`` for a locked thread or a deleted parent). Every answer carries ``X-Ratelimit-Used/Remaining/
Reset``; with nothing remaining it answers 429. A request without a unique User-Agent
(``<platform>:<app id>:<version> (by /u/<name>)``) is refused, as Reddit throttles default ones. Things are
built from tests/fixtures/connectors/reddit/ (shaped like the answers in praw-dev/asyncpraw's recorded
cassettes); tests script failures with :meth:`FakeReddit.fail` and read back every request.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "connectors" / "reddit"
OUR_NAME = "acme_care"
OUR_ID = "abc12"
CLIENT_ID = "app-client-id"
SECRET = "app-secret"
USERNAME = OUR_NAME
PASSWORD = "brand-password"
REFRESH = "good-refresh"
CODE = "good-code"
SCRIPT_APP = {"client_id": CLIENT_ID, "client_secret": SECRET, "username": USERNAME, "password": PASSWORD}
USER_AGENT_RE = re.compile(r"[\w.+-]+:[\w.+-]+:[\w.+-]+ \(by /u/[\w-]{3,20}\)")
NEWEST = 1_764_000_000.0  # created_utc of the fake's things, counting down


def config_for(fake: FakeReddit, **config: Any) -> dict[str, Any]:
    """An installation's settings pointing at ``fake``."""
    return {"api": fake.url, "auth": fake.url, "app_id": "com.example.caredesk", "contact_username": "care_ops",
            **config}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _child(name: str, index: int) -> dict[str, Any]:
    return copy.deepcopy(fixture(name)["data"]["children"][index])


def post(post_id: str, title: str, selftext: str = "", *, author: str = "router_owner", subreddit: str = "learnpython",
         created: float = NEWEST) -> dict[str, Any]:
    thing = _child("search.json", 0)
    thing["data"].update(id=post_id, name=f"t3_{post_id}", title=title, selftext=selftext, author=author,
                         author_fullname=f"t2_{author.lower()[:8]}", subreddit=subreddit, created_utc=created,
                         created=created, permalink=f"/r/{subreddit}/comments/{post_id}/slug/")
    return thing


def comment(comment_id: str, body: str, parent: str, *, author: str = "happy_customer", post_id: str = "1h2j3k4",
            kind: str = "comment_reply", created: float = NEWEST) -> dict[str, Any]:
    """A comment as the inbox lists it (a reply to the brand, or a mention: ``kind="username_mention"``)."""
    thing = _child("inbox.json", 1)
    thing["data"].update(id=comment_id, name=f"t1_{comment_id}", body=body, parent_id=parent, author=author,
                         author_fullname=f"t2_{author.lower()[:8]}", type=kind, created_utc=created, created=created,
                         context=f"/r/acme/comments/{post_id}/router_drops/{comment_id}/?context=3",
                         was_comment=True)
    return thing


def message(message_id: str, body: str, *, subject: str = "my order", author: str = "happy_customer",
            parent: str | None = None, created: float = NEWEST) -> dict[str, Any]:
    thing = _child("inbox.json", 0)
    first = parent or f"t4_{message_id}"
    thing["data"].update(id=message_id, name=f"t4_{message_id}", body=body, subject=subject, author=author,
                         author_fullname=f"t2_{author.lower()[:8]}", parent_id=parent, first_message_name=first,
                         created_utc=created, created=created)
    return thing


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class Failure:
    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str]
    after_effect: bool  # do the work (publish the comment), then answer with this failure


@dataclass
class State:
    inbox: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)  # the brand's messages
    comments: list[dict[str, Any]] = field(default_factory=list)  # the brand's comments
    subreddits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=lambda: {REFRESH})
    password: str = PASSWORD
    remaining: float = 600.0
    used: int = 0
    reset: int = 300
    failures: list[Failure] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)


class FakeReddit:
    def __init__(self) -> None:
        self.state = State()
        self.page_size = 100
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeReddit:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def fail(self, method: str, path: str, status: int, body: Any = None, *, headers: Mapping[str, str] | None = None,
             after_effect: bool = False) -> None:
        self.state.failures.append(Failure(method, path, status, body, dict(headers or {}), after_effect))

    def requests_to(self, method: str, path: str) -> list[Request]:
        return [r for r in self.state.requests if r.method == method and r.path == path]

    def api_requests(self) -> list[Request]:
        return [r for r in self.state.requests if r.path != "/api/v1/access_token"]

    # -- serving -----------------------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        request = Request(method, parts.path.rstrip("/") or "/", {k: v[-1] for k, v in parse_qs(parts.query).items()},
                          {k.lower(): v for k, v in handler.headers.items()},
                          {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()})
        with self._lock:
            self.state.requests.append(request)
            status, answer, headers = self._answer(request)
        payload = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json; charset=UTF-8")
        handler.send_header("content-length", str(len(payload)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _answer(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        if not USER_AGENT_RE.fullmatch(request.headers.get("user-agent", "")):
            return 403, {"message": "Forbidden: use a unique and descriptive User-Agent", "error": 403}, {}
        if request.path == "/api/v1/access_token" and request.method == "POST":
            return self._token(request)
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or auth[7:] not in self.state.access_tokens:
            return 401, {"message": "Unauthorized", "error": 401}, {"www-authenticate": 'Bearer realm="reddit"'}
        if self.state.remaining < 1:
            return 429, {"message": "Too Many Requests", "error": 429}, self._limits()
        self.state.remaining -= 1
        self.state.used += 1
        failure = next((f for f in self.state.failures if f.method == request.method and f.path == request.path),
                       None)
        if failure is not None:
            self.state.failures.remove(failure)
            if failure.after_effect:
                self._route(request)
            return failure.status, failure.body, {**self._limits(), **failure.headers}
        status, answer = self._route(request)
        return status, answer, self._limits()

    def _limits(self) -> dict[str, str]:
        return {"x-ratelimit-remaining": f"{self.state.remaining:.1f}", "x-ratelimit-used": str(self.state.used),
                "x-ratelimit-reset": str(self.state.reset)}

    def _route(self, request: Request) -> tuple[int, Any]:
        path, query = request.path, request.query
        if path == "/api/v1/me":
            me = fixture("me.json")
            me.update(name=OUR_NAME, id=OUR_ID)
            return 200, me
        if path == "/message/inbox":
            return 200, self._listing(self.state.inbox, query)
        if path == "/message/mentions":
            return 200, self._listing(self.state.mentions, query)
        if path == "/message/sent":
            return 200, self._listing(self.state.sent, query)
        if path == f"/user/{OUR_NAME}/comments":
            return 200, self._listing(self.state.comments, query)
        found = re.fullmatch(r"/r/(\w+)/(new|search)", path)
        if found:
            things = self.state.subreddits.get(found.group(1).lower(), [])
            if found.group(2) == "search":
                terms = [t.lower() for t in re.findall(r'"([^"]+)"', query.get("q", ""))]
                things = [t for t in things
                          if any(term in (t["data"]["title"] + " " + t["data"]["selftext"]).lower() for term in terms)]
            return 200, self._listing(things, query)
        if path == "/api/comment" and request.method == "POST":
            return self._comment(request.form)
        return 404, {"message": "Not Found", "error": 404}

    def _listing(self, things: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
        def when(thing: Mapping[str, Any]) -> float:
            created = thing["data"]["created_utc"]
            return float(created) if isinstance(created, int | float) else float("inf")  # a broken one: first

        ordered = sorted(things, key=when, reverse=True)
        start = 0
        if query.get("after"):
            names = [t["data"]["name"] for t in ordered]
            start = names.index(query["after"]) + 1 if query["after"] in names else len(ordered)
        size = min(int(query.get("limit") or 25), self.page_size)
        page = ordered[start:start + size]
        after = page[-1]["data"]["name"] if page and start + size < len(ordered) else None
        return {"kind": "Listing", "data": {"after": after, "dist": len(page), "modhash": None, "geo_filter": "",
                                            "children": copy.deepcopy(page), "before": None}}

    def _all_things(self) -> dict[str, dict[str, Any]]:
        things = [*self.state.inbox, *self.state.mentions, *self.state.sent, *self.state.comments]
        for listed in self.state.subreddits.values():
            things.extend(listed)
        return {t["data"]["name"]: t for t in things}

    def _comment(self, form: Mapping[str, str]) -> tuple[int, Any]:
        parent, text = form.get("thing_id", ""), form.get("text", "")
        if form.get("api_type") != "json":
            return 200, {"jquery": []}  # Reddit's old answer, without api_type=json
        if parent in self.state.locked:
            return 200, {"json": {"errors": [["THREAD_LOCKED", "Comments are locked.", "parent"]]}}
        if parent in self.state.deleted or parent not in self._all_things():
            return 200, {"json": {"errors": [["DELETED_COMMENT", "that comment has been deleted", "parent"]]}}
        if not text.strip():
            return 200, {"json": {"errors": [["NO_TEXT", "we need something here", "text"]]}}
        n = next(self._ids)
        created = NEWEST + n
        if parent.startswith("t4_"):
            answer = fixture("comment_on_message.json")
            thing = answer["json"]["data"]["things"][0]
            thing["data"].update(id=f"reply{n}", name=f"t4_reply{n}", body=text, parent_id=parent, author=OUR_NAME,
                                 created_utc=created)
            self.state.sent.append(copy.deepcopy(thing))
        else:
            answer = fixture("comment_on_comment.json")
            thing = answer["json"]["data"]["things"][0]
            thing["data"].update(id=f"reply{n}", name=f"t1_reply{n}", body=text, parent_id=parent, author=OUR_NAME,
                                 created_utc=created, permalink=f"/r/test/comments/post/slug/reply{n}/")
            self.state.comments.append(copy.deepcopy(thing))
        return 200, answer

    def _token(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        auth = request.headers.get("authorization", "")
        try:
            client_id, _, secret = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        except ValueError:
            client_id, secret = "", ""
        if not auth.startswith("Basic ") or client_id != CLIENT_ID or secret not in (SECRET, ""):
            return 401, {"message": "Unauthorized", "error": 401}, {}
        form = request.form
        grant = form.get("grant_type")
        if grant == "password":
            if secret != SECRET or form.get("username") != USERNAME or form.get("password") != self.state.password:
                return 200, {"error": "invalid_grant"}, {}
            answer = fixture("token_password.json")
        elif grant == "refresh_token":
            if form.get("refresh_token") not in self.state.refresh_tokens:
                return 400, {"error": "invalid_grant"}, {}
            answer = fixture("token_refresh.json")
            answer.pop("refresh_token", None)  # Reddit keeps a refresh token for good: it sends no new one
        elif grant == "authorization_code":
            if form.get("code") != CODE:
                return 200, {"error": "invalid_grant"}, {}
            answer = fixture("token_refresh.json")
            answer["refresh_token"] = REFRESH
        else:
            return 400, {"error": "unsupported_grant_type"}, {}
        answer.update(access_token=f"access-{next(self._ids)}", expires_in=3600)
        self.state.access_tokens.add(answer["access_token"])
        return 200, answer, {}
