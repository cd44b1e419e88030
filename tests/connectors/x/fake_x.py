"""A small X API v2 server on 127.0.0.1 for the X provider's tests.

It answers GET /2/users/me, GET /2/users/:id/mentions and /2/users/:id/tweets (newest first, ``since_id``,
``max_results``, ``pagination_token``/``meta.next_token``, ``includes.users`` for ``expansions=author_id``),
GET /2/tweets/search/recent (``search`` posts, ``next_token`` paging), POST /2/tweets, GET /2/tweets?ids= (deleted
ids in ``errors`` as ``resource-not-found``, X's partial errors), GET /2/users?ids= (user look-up), /2/webhooks
(list, register with a CRC check against the desk, re-check), DMs (GET /2/dm_events, POST and GET
/2/dm_conversations/with/:id/…; a participant in ``dm_closed`` gets X's 403), the authorize page (GET
/i/oauth2/authorize approves at once and redirects with a code, as the brand's admin would) and POST
/2/oauth2/token (authorization codes with PKCE S256, single use; refresh tokens rotate and are single use), the
Activity API's subscriptions (list, create, PUT), the filtered stream's rules, and the two
streams (``/2/activity/stream``,
``/2/tweets/search/stream``, app bearer token only): each connection plays the next script of
:attr:`State.streams` (bytes written as they are, a float sleeps, then the connection closes: a disconnect), or
sends ``\r\n`` keep-alives until the server stops. Bodies are built from tests/fixtures/connectors/x/. Tests
script failures with :meth:`FakeX.fail` and read back every request.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "connectors" / "x"
OUR_ID = "2244994945"
OUR_HANDLE = "TwitterDev"
ACCESS = "good-access"
REFRESH = "good-refresh"
CLIENT_ID = "client-abc"
CLIENT_SECRET = "client-shh"
BEARER = "app-bearer"
STREAM_PATHS = ("/2/activity/stream", "/2/tweets/search/stream")


_STREAM = object()  # the answer is a stream


def line(body: Any) -> bytes:
    """One stream line as X writes it."""
    return json.dumps(body).encode() + b"\r\n"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def user(user_id: str, username: str) -> dict[str, Any]:
    body = copy.deepcopy(fixture("mentions.json")["includes"]["users"][0])
    body.update(id=user_id, username=username, name=username.title())
    return body


def tweet(tweet_id: str, text: str, author_id: str = "1453512613467029505", **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(fixture("mentions.json")["data"][1])
    body.update(id=tweet_id, text=text, author_id=author_id, conversation_id=tweet_id,
                edit_history_tweet_ids=[tweet_id])
    body.update(changes)
    return body


def _invalid(reason: str) -> tuple[int, Any, dict[str, str]]:
    """X's 400 for a webhook it will not take: the generic problem, the reason in ``errors``."""
    return 400, {"errors": [{"message": reason}], "title": "Invalid Request",
                 "detail": "One or more parameters to your request was invalid.",
                 "type": "https://api.twitter.com/2/problems/invalid-request"}, {}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Failure:
    method: str
    path: str
    status: int
    body: Any
    headers: dict[str, str]
    after_effect: bool  # do the work (publish the post), then answer with this failure


@dataclass
class State:
    mentions: list[dict[str, Any]] = field(default_factory=list)  # any order; served newest first
    own_posts: list[dict[str, Any]] = field(default_factory=list)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    tweets: dict[str, dict[str, Any]] = field(default_factory=dict)  # other posts (newer versions of edits)
    deleted: set[str] = field(default_factory=set)  # ids gone from X
    dm_events: list[dict[str, Any]] = field(default_factory=list)
    dm_closed: set[str] = field(default_factory=set)  # users whose DM settings refuse the brand
    codes: dict[str, dict[str, str]] = field(default_factory=dict)  # authorization code → its request
    confidential: bool = False  # the app is a confidential client: the token endpoint wants HTTP Basic
    access_tokens: set[str] = field(default_factory=lambda: {ACCESS})
    refresh_tokens: set[str] = field(default_factory=lambda: {REFRESH})
    failures: list[Failure] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    search: list[dict[str, Any]] = field(default_factory=list)  # what recent search finds, whatever the query
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)
    # path → scripts, one per connection: bytes to write, a float to sleep; the connection then closes.
    streams: dict[str, list[list[bytes | float]]] = field(default_factory=dict)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    # The app's consumer secret: with it, registering a webhook runs X's CRC check against the URL (reached
    # through ``reach``: public URL → where this machine serves it); without it, a registration is recorded.
    consumer_secret: str | None = None
    reach: dict[str, str] = field(default_factory=dict)


class FakeX:
    def __init__(self) -> None:
        self.state = State()
        for u in [*fixture("mentions.json")["includes"]["users"], *fixture("dm_events.json")["includes"]["users"]]:
            self.state.users[u["id"]] = u
        self.state.users[OUR_ID] = {**fixture("users_me.json")["data"], "public_metrics": {"followers_count": 9}}
        self._ids = itertools.count(1445880548472328192)
        self._tokens = itertools.count(1)
        self._lock = threading.Lock()
        self.create_delay = 0.0  # seconds a post creation takes before anything is stored (a slow server)
        self.lose_answer_once = False  # publish the next post, then answer 503 as if the answer got lost
        self._stopping = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PUT(self) -> None:
                fake._handle(self, "PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeX:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def fail(self, method: str, path: str, status: int, body: Any = None, *, headers: Mapping[str, str] | None = None,
             after_effect: bool = False) -> None:
        self.state.failures.append(Failure(method, path, status, body, dict(headers or {}), after_effect))

    def requests_to(self, method: str, path: str) -> list[Request]:
        return [r for r in self.state.requests if r.method == method and r.path == path]

    # -- serving -----------------------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        if method == "POST" and parts.path == "/2/tweets" and self.create_delay:
            time.sleep(self.create_delay)  # outside the lock: other requests go on meanwhile
        request = Request(method, parts.path, query, {k.lower(): v for k, v in handler.headers.items()}, body)
        with self._lock:
            self.state.requests.append(request)
            status, answer, headers = self._answer(request)
        if status == 200 and answer is _STREAM:
            self._stream(handler, request.path)
            return
        payload = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(payload)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _answer(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        failure = next((f for f in self.state.failures if f.method == request.method and f.path == request.path),
                       None)
        if failure is not None:
            self.state.failures.remove(failure)
            if failure.after_effect:
                self._route(request)
            return failure.status, failure.body, failure.headers
        return self._route(request)

    def _stream(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        with self._lock:
            scripts = self.state.streams.get(path) or []
            script = scripts.pop(0) if scripts else None
        handler.send_response(200)
        handler.send_header("content-type", "application/json")
        handler.send_header("connection", "close")
        handler.end_headers()
        try:
            if script is None:
                while not self._stopping.wait(0.1):
                    handler.wfile.write(b"\r\n")
                    handler.wfile.flush()
                return
            for step in script:
                if isinstance(step, float):
                    if self._stopping.wait(step):  # the server stops: end the response
                        return
                else:
                    handler.wfile.write(step)
                    handler.wfile.flush()
        except OSError:
            pass  # the client went away

    def _app(self, request: Request) -> tuple[int, Any, dict[str, str]] | None:
        """The app-only endpoints: streams and stream rules."""
        if request.headers.get("authorization", "") != f"Bearer {BEARER}":
            return 401, fixture("unauthorized.json"), {}
        if request.path in STREAM_PATHS:
            return 200, _STREAM, {}
        if request.method == "GET":
            return 200, {"data": list(self.state.rules), "meta": {"result_count": len(self.state.rules)}}, {}
        body = json.loads(request.body)
        if "delete" in body:
            ids = set(body["delete"]["ids"])
            self.state.rules = [r for r in self.state.rules if r["id"] not in ids]
            return 200, {"meta": {"summary": {"deleted": len(ids), "not_deleted": 0}}}, {}
        added = []
        for rule in body["add"]:
            added.append({"id": str(next(self._ids)), **rule})
        self.state.rules.extend(added)
        return 201, {"data": added, "meta": {"summary": {"created": len(added), "not_created": 0, "valid": len(added),
                                                         "invalid": 0}}}, {}

    def _crc(self, url: str) -> str:
        """X's CRC check of a webhook URL: "" when it passed, else why not."""
        assert self.state.consumer_secret is not None
        target = self.state.reach.get(url)
        if target is None:
            return "CrcValidationFailed: could not connect to the webhook URL"
        token = f"crc-{next(self._tokens)}"
        try:
            answer = httpx.get(target, params={"crc_token": token}, timeout=10)
            got = answer.json().get("response_token") if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            got = None
        mac = hmac.new(self.state.consumer_secret.encode(), token.encode(), hashlib.sha256).digest()
        if got != "sha256=" + base64.b64encode(mac).decode():
            return "CrcValidationFailed: Invalid response_token"
        return ""

    def _webhooks(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        """``/2/webhooks``: list, register (a CRC check first), and ``PUT /2/webhooks/:id`` (the check again)."""
        if request.method == "GET":
            return 200, {"data": list(self.state.webhooks), "meta": {"result_count": len(self.state.webhooks)}}, {}
        if request.method == "PUT":
            hook = next((w for w in self.state.webhooks if request.path == f"/2/webhooks/{w['id']}"), None)
            if hook is None:
                return _invalid("WebhookIdInvalid")
            hook["valid"] = self.state.consumer_secret is None or not self._crc(hook["url"])
            return 200, {"data": {"valid": hook["valid"]}}, {}
        url = json.loads(request.body).get("url")
        if not isinstance(url, str) or not url.startswith("https://"):
            return _invalid("UrlValidationFailed")
        if any(w["url"] == url for w in self.state.webhooks):
            return _invalid("DuplicateUrlFailed")
        if self.state.consumer_secret is not None and (problem := self._crc(url)):
            return _invalid(problem)
        hook = {"created_at": "2026-11-23T12:00:00.000Z", "id": str(next(self._ids)), "url": url, "valid": True}
        self.state.webhooks.append(hook)
        return 200, {"data": dict(hook)}, {}

    def _subscriptions(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        if request.method == "PUT":
            sub = next((x for x in self.state.subscriptions
                        if request.path == f"/2/activity/subscriptions/{x['subscription_id']}"), None)
            if sub is None:
                return 404, {"title": "Not Found Error", "detail": "no such subscription", "status": 404}, {}
            sub.update(json.loads(request.body), updated_at="2026-11-23T12:30:00.000Z")
            return 200, {"data": dict(sub), "meta": {"total_subscriptions": len(self.state.subscriptions)}}, {}
        if request.method == "GET":
            return 200, {"data": list(self.state.subscriptions),
                         "meta": {"total_subscriptions": len(self.state.subscriptions)}}, {}
        body = json.loads(request.body)
        sub = {"subscription_id": str(next(self._ids)), **body, "created_at": "2026-11-23T12:00:00.000Z",
               "updated_at": "2026-11-23T12:00:00.000Z"}
        self.state.subscriptions.append(sub)
        return 200, {"data": sub}, {}

    def _route(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        if request.path == "/2/oauth2/token" and request.method == "POST":
            return self._token(request)
        if request.path == "/2/webhooks" or request.path.startswith("/2/webhooks/"):
            if request.headers.get("authorization", "") != f"Bearer {BEARER}":
                return 403, {"title": "Unsupported Authentication", "detail": "Authenticating with OAuth 2.0 User "
                             "Context is forbidden for this endpoint. Supported authentication types are "
                             "[OAuth 2.0 Application-Only].", "type": "https://api.twitter.com/2/problems/"
                             "unsupported-authentication", "status": 403}, {}
            return self._webhooks(request)
        if request.path in STREAM_PATHS or request.path == "/2/tweets/search/stream/rules":
            answer = self._app(request)
            assert answer is not None
            return answer
        if request.path == "/i/oauth2/authorize":
            return self._authorize(request.query)
        auth = request.headers.get("authorization", "")
        if request.path == "/2/users" and auth == f"Bearer {BEARER}":
            return self._users(request.query)  # the lookup takes the app's token too
        if not auth.startswith("Bearer ") or auth[7:] not in self.state.access_tokens:
            return 401, fixture("unauthorized.json"), {}
        limits = {"x-rate-limit-limit": "75", "x-rate-limit-remaining": "74", "x-rate-limit-reset": "1900000000"}
        if request.path == "/2/users/me":
            return 200, fixture("users_me.json"), limits
        if request.path == f"/2/users/{OUR_ID}/mentions":
            return 200, self._timeline(self.state.mentions, request.query), limits
        if request.path == f"/2/users/{OUR_ID}/tweets":
            return 200, self._timeline(self.state.own_posts, request.query), limits
        if request.path == "/2/tweets" and request.method == "POST":
            answer = self._post(json.loads(request.body))
            if self.lose_answer_once:
                self.lose_answer_once = False
                return 503, {"title": "Service Unavailable", "detail": "Service Unavailable", "status": 503}, {}
            return answer
        if request.path == "/2/tweets/search/recent":
            query = dict(request.query)
            if "next_token" in query:
                query["pagination_token"] = query.pop("next_token")
            return 200, self._timeline(self.state.search, query), limits
        if request.path == "/2/activity/subscriptions" or request.path.startswith("/2/activity/subscriptions/"):
            return self._subscriptions(request)
        if request.path == "/2/tweets" and request.method == "GET":
            return 200, self._lookup(request.query), limits
        if request.path == "/2/dm_events":
            return 200, self._dm_page(self.state.dm_events, request.query), limits
        if request.path.startswith("/2/dm_conversations/with/"):
            participant, _, rest = request.path.removeprefix("/2/dm_conversations/with/").partition("/")
            if rest == "messages" and request.method == "POST":
                return self._send_dm(participant, json.loads(request.body))
            if rest == "dm_events":
                events = [e for e in self.state.dm_events if participant in e["dm_conversation_id"].split("-")]
                return 200, self._dm_page(events, request.query), limits
        return 404, {"title": "Not Found Error", "detail": "no such route", "type": "about:blank", "status": 404}, {}

    def _users(self, query: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        """``GET /2/users?ids=``: the users found; the others under ``errors``, as X lists them."""
        ids = [i for i in query.get("ids", "").split(",") if i]
        if not ids or len(ids) > 100:
            return 400, {"title": "Invalid Request", "detail": "ids: 1 to 100 ids", "status": 400}, {}
        body: dict[str, Any] = {}
        found = [self.state.users[i] for i in ids if i in self.state.users]
        if found:
            body["data"] = found
        missing = [i for i in ids if i not in self.state.users]
        if missing:
            body["errors"] = [{"value": i, "detail": f"Could not find user with ids: [{i}].",
                               "title": "Not Found Error", "resource_type": "user", "parameter": "ids",
                               "resource_id": i,
                               "type": "https://api.twitter.com/2/problems/resource-not-found"} for i in missing]
        return 200, body, {}

    def _timeline(self, posts: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
        ordered = sorted(posts, key=lambda t: int(t["id"]), reverse=True)
        if "since_id" in query:
            ordered = [t for t in ordered if int(t["id"]) > int(query["since_id"])]
        if "until_id" in query:
            ordered = [t for t in ordered if int(t["id"]) < int(query["until_id"])]
        start = int(query.get("pagination_token") or 0)
        size = int(query.get("max_results") or 10)
        size = min(size, getattr(self, "page_size", size))
        page = ordered[start : start + size]
        if not page:
            return {"meta": {"result_count": 0}}
        body: dict[str, Any] = {"data": page, "meta": {"result_count": len(page), "newest_id": page[0]["id"],
                                                       "oldest_id": page[-1]["id"]}}
        if start + size < len(ordered):
            body["meta"]["next_token"] = str(start + size)
        if query.get("expansions") == "author_id":
            ids = dict.fromkeys(t["author_id"] for t in page)
            body["includes"] = {"users": [self.state.users[i] for i in ids if i in self.state.users]}
        return body

    def _post(self, body: Mapping[str, Any]) -> tuple[int, Any, dict[str, str]]:
        tweet_id = str(next(self._ids))
        post = {"id": tweet_id, "text": body["text"], "author_id": OUR_ID, "edit_history_tweet_ids": [tweet_id],
                "created_at": "2021-03-26T20:00:00.000Z"}
        parent = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        if parent:
            post["referenced_tweets"] = [{"type": "replied_to", "id": parent}]
        self.state.own_posts.append(post)
        answer = fixture("tweet_create.json")
        answer["data"].update(id=tweet_id, text=body["text"], edit_history_tweet_ids=[tweet_id])
        return 201, answer, {}

    def all_tweets(self) -> dict[str, dict[str, Any]]:
        return {t["id"]: t for t in [*self.state.mentions, *self.state.own_posts, *self.state.tweets.values()]}

    def _lookup(self, query: Mapping[str, str]) -> dict[str, Any]:
        known = self.all_tweets()
        found, errors = [], []
        for tweet_id in query.get("ids", "").split(","):
            if tweet_id in known and tweet_id not in self.state.deleted:
                found.append(known[tweet_id])
            else:
                error = copy.deepcopy(fixture("tweets_lookup_partial.json")["errors"][0])
                error.update(value=tweet_id, resource_id=tweet_id,
                             detail=f"Could not find tweet with ids: [{tweet_id}].")
                errors.append(error)
        body: dict[str, Any] = {}
        if found:
            body["data"] = found
            if query.get("expansions") == "author_id":
                ids = dict.fromkeys(t["author_id"] for t in found)
                body["includes"] = {"users": [self.state.users[i] for i in ids if i in self.state.users]}
        if errors:
            body["errors"] = errors
        return body

    def _dm_page(self, events: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
        ordered = sorted(events, key=lambda e: int(e["id"]), reverse=True)
        start = int(query.get("pagination_token") or 0)
        size = min(int(query.get("max_results") or 100), getattr(self, "page_size", 100))
        page = ordered[start : start + size]
        body: dict[str, Any] = {"meta": {"result_count": len(page)}}
        if page:
            body["data"] = page
        if start + size < len(ordered):
            body["meta"]["next_token"] = str(start + size)
        if query.get("expansions") == "sender_id":
            ids = dict.fromkeys(e["sender_id"] for e in page)
            body["includes"] = {"users": [self.state.users[i] for i in ids if i in self.state.users]}
        return body

    def _send_dm(self, participant: str, body: Mapping[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if participant in self.state.dm_closed:
            return 403, fixture("dm_forbidden.json"), {}
        event_id = str(next(self._ids))
        conversation = "-".join(sorted((participant, OUR_ID), key=int))
        self.state.dm_events.append({"id": event_id, "event_type": "MessageCreate", "text": body["text"],
                                     "sender_id": OUR_ID, "dm_conversation_id": conversation,
                                     "created_at": "2022-10-26T10:00:00.000Z"})
        answer = fixture("dm_create.json")
        answer["data"].update(dm_conversation_id=conversation, dm_event_id=event_id)
        return 201, answer, {}

    def _authorize(self, query: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        """The brand's admin logs in and allows the app: a code bound to the request's challenge."""
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256" \
                or query.get("client_id") != CLIENT_ID or not query.get("code_challenge"):
            return 400, {"error": "invalid_request"}, {}
        code = f"code-{next(self._tokens)}"
        self.state.codes[code] = dict(query)
        location = f"{query['redirect_uri']}?{urlencode({'state': query.get('state', ''), 'code': code})}"
        return 302, {}, {"location": location}

    def _exchange(self, request: Request, form: Mapping[str, str]) -> tuple[int, Any, dict[str, str]]:
        asked = self.state.codes.pop(form.get("code", ""), None)  # single use, whatever the outcome
        invalid = {"error": "invalid_request", "error_description": "Value passed for the authorization code was "
                   "invalid."}
        if asked is None or form.get("redirect_uri") != asked["redirect_uri"]:
            return 400, invalid, {}
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != asked["code_challenge"]:
            return 400, invalid, {}
        if self.state.confidential:
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != expected:
                return 401, {"error": "unauthorized_client", "error_description": "Missing valid authorization "
                             "header"}, {}
        return self._issue(asked.get("scope", ""))

    def _issue(self, scope: str | None = None) -> tuple[int, Any, dict[str, str]]:
        n = next(self._tokens)
        answer = fixture("oauth2_token.json")
        answer.update(access_token=f"access-{n}", refresh_token=f"refresh-{n}")
        if scope is not None:
            answer["scope"] = scope
        self.state.access_tokens = {answer["access_token"]}
        self.state.refresh_tokens.add(answer["refresh_token"])
        return 200, answer, {}

    def _token(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") == "authorization_code":
            return self._exchange(request, form)
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") not in self.state.refresh_tokens \
                or form.get("client_id") != CLIENT_ID:
            return 400, {"error": "invalid_request", "error_description": "Value passed for the token was invalid."}, {}
        self.state.refresh_tokens.discard(form["refresh_token"])  # single use: X rotates it
        return self._issue()
