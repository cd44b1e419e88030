"""Test-only providers: adapters for the platform double in :mod:`runtime_platform` (a stream and a poll API) and for a
webhook platform that signs deliveries with HMAC-SHA256. They are doubles of *platforms'* adapters, written
against the wire formats those modules document, not of caredesk's code."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from caredesk.connectors.base import (
    AuthRevoked,
    Capability,
    FetchResult,
    NormalizedAuthor,
    NormalizedPost,
    PostChange,
    PostDeleted,
    PostEdited,
    Provider,
    ProviderConfig,
    ProviderCredentials,
    RateLimited,
    Refused,
    Transient,
    WebhookAnswer,
    WebhookRequest,
)
from caredesk.connectors.costs.prices import DEFAULT_X_PRICES, Operation, UsageEvent


class StreamConfig(ProviderConfig):
    url: str
    keywords: list[str] = []  # the listening rules: only posts with one of these words (none: every post)


class TokenCredentials(ProviderCredentials):
    token: SecretStr


def _post(data: Mapping[str, Any]) -> NormalizedPost:
    author = data["author"]
    return NormalizedPost(
        external_id=data["id"],
        author=NormalizedAuthor(author["id"], author["handle"], author["name"]),
        text=data["text"],
        created_at=datetime.fromisoformat(data["created_at"]),
        raw=dict(data),
    )


def _check_status(response: httpx.Response) -> None:
    if response.status_code == 401:
        raise AuthRevoked("the platform says: invalid token")
    if response.status_code == 429:
        wait = int(response.headers.get("Retry-After", "60"))
        raise RateLimited("the platform asks us to slow down", datetime.now(UTC) + timedelta(seconds=wait))
    if response.status_code >= 500:
        raise Transient(f"the platform answered {response.status_code}")
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", "")
        except (httpx.ResponseNotRead, ValueError):
            detail = ""
        raise Refused(f"the platform answered {response.status_code}" + (f": {detail}" if detail else ""))


class StreamTestProvider(Provider[StreamConfig]):
    key = "test_stream"
    display_name = "Test stream"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.STREAM})
    config_model = StreamConfig
    credentials_model = TokenCredentials

    @property
    def platform(self) -> str:
        return "teststream"

    def _wanted(self, text: str) -> bool:
        words = [w.lower() for w in self.config.keywords]
        return not words or any(w in text.lower() for w in words)

    def _batch(self, kind: str, seq: int, data: Mapping[str, Any]) -> FetchResult:
        posts: list[NormalizedPost] = []
        changes: list[PostChange] = []
        if kind == "post" and self._wanted(data["text"]):
            posts.append(_post(data))
        elif kind == "edit":
            changes.append(PostEdited(_post(data)))
        elif kind == "delete":
            changes.append(PostDeleted(data["id"]))
        credentials = {"token": data["token"]} if kind == "token" else None
        return FetchResult(posts=posts, cursor={"after": seq}, changes=changes, credentials=credentials)

    async def stream(self, cursor: Mapping[str, Any], http: httpx.AsyncClient) -> AsyncIterator[FetchResult]:
        headers = {"Authorization": f"Bearer {self.credentials.get('token', '')}"}
        params = {"after": int(cursor.get("after", 0))}
        try:
            async with http.stream("GET", f"{self.config.url}/stream", params=params, headers=headers) as response:
                if response.status_code != 200:
                    await response.aread()  # the error's body says why
                _check_status(response)
                fields: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        continue
                    if line:
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
                        continue
                    if "data" in fields:
                        yield self._batch(fields.get("event", "post"), int(fields["id"]), json.loads(fields["data"]))
                    fields = {}
        except httpx.HTTPError as exc:
            raise Transient(f"the stream broke: {exc}") from exc


class PollConfig(ProviderConfig):
    url: str


class PollTestProvider(Provider[PollConfig]):
    key = "test_poll"
    display_name = "Test poll"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.POLL})
    config_model = PollConfig
    credentials_model = TokenCredentials

    @property
    def platform(self) -> str:
        return "testpoll"

    def fetch(self, cursor: Mapping[str, Any], now: datetime) -> FetchResult:
        assert self.http is not None
        try:
            response = self.http.get(f"{self.config.url}/posts", params={"after": int(cursor.get("after", 0))},
                                     headers={"Authorization": f"Bearer {self.credentials.get('token', '')}"})
        except httpx.HTTPError as exc:
            raise Transient(str(exc)) from exc
        _check_status(response)
        body = response.json()
        remaining = response.headers.get("X-RateLimit-Remaining")
        return FetchResult(posts=[_post(p) for p in body["posts"]], cursor={"after": body["next"]},
                           rate_limit_remaining=int(remaining) if remaining is not None else None)


class StreamOrPollTestProvider(PollTestProvider):
    """A platform that can be streamed or polled (as Mastodon can): polls only while nobody streams it."""

    key = "test_stream_or_poll"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.STREAM, Capability.POLL})

    async def stream(self, cursor: Mapping[str, Any], http: httpx.AsyncClient) -> AsyncIterator[FetchResult]:
        raise Transient("this double is only polled")
        yield  # an async generator


class HookCredentials(ProviderCredentials):
    secret: SecretStr


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class HookTestProvider(Provider[ProviderConfig]):
    """A webhook platform: deliveries are ``{"events": [{"type": "post"|"edit"|"delete", ...post fields}]}``
    POSTed with ``X-Signature: sha256=HEX`` (HMAC-SHA256 of the body with the shared secret); a
    ``GET ?challenge=X`` must be answered ``{"challenge": X}``."""

    key = "test_hook"
    display_name = "Test webhook"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.WEBHOOK})
    config_model = ProviderConfig
    credentials_model = HookCredentials

    @property
    def platform(self) -> str:
        return "testhook"

    def verify(self, request: WebhookRequest) -> WebhookAnswer | None:
        if request.method == "GET" and "challenge" in request.query:
            return WebhookAnswer(200, json.dumps({"challenge": request.query["challenge"]}).encode())
        expected = sign(str(self.credentials.get("secret", "")), request.body)
        if not hmac.compare_digest(expected, request.headers.get("x-signature", "")):
            raise Refused("the delivery's signature does not match")
        return None

    def parse(self, body: bytes, now: datetime) -> FetchResult:
        events = json.loads(body)["events"]
        posts = [_post(e) for e in events if e["type"] == "post"]
        changes: list[PostChange] = [
            PostEdited(_post(e)) if e["type"] == "edit" else PostDeleted(e["id"])
            for e in events if e["type"] in ("edit", "delete")
        ]
        return FetchResult(posts=posts, cursor={}, changes=changes)


class LadderCredentials(ProviderCredentials):
    token: SecretStr
    secret: SecretStr = SecretStr("")


class StreamAndPollTestProvider(StreamTestProvider):
    """A platform that can be streamed and polled on the same cursor (as X's mentions can): the ladder's test."""

    key = "test_stream_and_poll"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.STREAM, Capability.POLL})
    credentials_model = LadderCredentials
    fetch = PollTestProvider.fetch  # type: ignore[assignment]


class LadderTestProvider(StreamAndPollTestProvider):
    """Every automatic rung: the webhook platform's deliveries and challenge, the stream and the poll API."""

    key = "test_ladder"
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.WEBHOOK, Capability.STREAM,
                                                               Capability.POLL})
    verify = HookTestProvider.verify
    parse = HookTestProvider.parse


def _reads(result: FetchResult, now: datetime) -> FetchResult:
    ids = tuple(p.external_id for p in result.posts)
    usage = (UsageEvent(Operation.POST_READ, now, ids),) if ids else ()
    return FetchResult(posts=result.posts, cursor=result.cursor, changes=result.changes, usage=usage)


class PaidStreamTestProvider(StreamTestProvider):
    """A stream that bills every post it delivers, at X's prices (as X's filtered stream does)."""

    key = "test_paid_stream"
    prices = DEFAULT_X_PRICES

    def _batch(self, kind: str, seq: int, data: Mapping[str, Any]) -> FetchResult:
        return _reads(super()._batch(kind, seq, data), datetime.now(UTC))


class PaidHookTestProvider(HookTestProvider):
    """Webhook deliveries billed as post reads (X's Account Activity deliveries are)."""

    key = "test_paid_hook"
    prices = DEFAULT_X_PRICES

    def parse(self, body: bytes, now: datetime) -> FetchResult:
        return _reads(super().parse(body, now), now)


TEST_PROVIDERS: tuple[type[Provider], ...] = (  # type: ignore[type-arg]
    StreamTestProvider, PollTestProvider, StreamOrPollTestProvider, HookTestProvider, StreamAndPollTestProvider,
    LadderTestProvider, PaidStreamTestProvider, PaidHookTestProvider,
)
