"""Talking to a Mastodon server: requests, and the server's answers turned into results or typed errors.

The REST conversations (catching up on notifications and hashtag timelines) are written once, as generators that
yield a :class:`Call` and receive its :class:`httpx.Response`; :func:`run_sync` and :func:`run_async` drive them
with a sync or an async client, so polling and the stream's catch-up are the same code.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from caredesk.connectors.base import ConnectorError, Transient
from caredesk.connectors.responses import json_body, raise_for_status

# When a 429 carries no usable reset time: Mastodon's limits are per 5 minutes.
DEFAULT_RETRY = timedelta(minutes=5)
USER_AGENT = "caredesk (+https://github.com/caredesk/caredesk)"


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    url: str
    params: Any = None  # a mapping or a list of pairs (types[] repeats)
    data: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


T = TypeVar("T")
Conversation = Generator[Call, httpx.Response, T]


def platform_message(response: httpx.Response) -> str:
    """The server's own reason for an error (``{"error": "..."}``), shortened; the body is not trusted."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = ""
    if isinstance(body, Mapping):
        message = str(body.get("error") or "")
        description = body.get("error_description")
        if description:
            message = f"{message}: {description}" if message else str(description)
    if not message:
        message = response.reason_phrase or f"HTTP {response.status_code}"
    message = " ".join(message.split())
    return message[:300] + ("…" if len(message) > 300 else "")


def rate_limit_reset(response: httpx.Response, now: datetime) -> datetime:
    """When the server's rate-limit window ends: ``X-RateLimit-Reset`` (ISO 8601), else ``Retry-After``."""
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    if reset:
        try:
            when = datetime.fromisoformat(reset.replace("Z", "+00:00"))
            if when.utcoffset() is None:
                when = when.replace(tzinfo=UTC)
            return max(when.astimezone(UTC), now)
        except ValueError:
            pass
    retry_after = response.headers.get("retry-after", "").strip()
    if retry_after.isdigit():
        return now + timedelta(seconds=int(retry_after))
    return now + DEFAULT_RETRY


def exhausted(response: httpx.Response) -> bool:
    """The server says no request is left in this window: stop before it answers 429."""
    return response.headers.get("x-ratelimit-remaining", "").strip() == "0"


def raise_for(response: httpx.Response, what: str, now: datetime | None = None) -> None:
    """Map an error status to the contract's typed errors; return on 2xx."""
    raise_for_status(response, "Mastodon", what, message=platform_message,
                     retry_at=lambda: rate_limit_reset(response, now or datetime.now(UTC)))


def json_of(response: httpx.Response, what: str) -> Any:
    return json_body(response, "Mastodon", what)


def run_sync(http: httpx.Client, token: str, conversation: Conversation[T]) -> T:
    try:
        call = next(conversation)
        while True:
            call = conversation.send(_send_sync(http, token, call))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_async(http: httpx.AsyncClient, token: str, conversation: Conversation[T]) -> T:
    try:
        call = next(conversation)
        while True:
            call = conversation.send(await _send_async(http, token, call))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def headers_for(token: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT, "Accept": "application/json"}
    headers.update(extra or {})
    return headers


def _send_sync(http: httpx.Client, token: str, call: Call) -> httpx.Response:
    try:
        return http.request(call.method, call.url, params=call.params, data=call.data,
                            headers=headers_for(token, call.headers))
    except httpx.TimeoutException as exc:
        raise Transient(f"Mastodon did not answer in time ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise Transient(f"could not reach Mastodon ({type(exc).__name__}: {exc})") from exc


async def _send_async(http: httpx.AsyncClient, token: str, call: Call) -> httpx.Response:
    try:
        return await http.request(call.method, call.url, params=call.params, data=call.data,
                                  headers=headers_for(token, call.headers))
    except httpx.TimeoutException as exc:
        raise Transient(f"Mastodon did not answer in time ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise Transient(f"could not reach Mastodon ({type(exc).__name__}: {exc})") from exc


def same_origin(url: str, base: str) -> bool:
    """Whether a URL the server handed us (a Link header) points back at the server we trust with the token."""
    try:
        given, ours = httpx.URL(url), httpx.URL(base)
    except (httpx.InvalidURL, ValueError):
        return False
    return (given.scheme, given.host, given.port) == (ours.scheme, ours.host, ours.port)


__all__ = ["Call", "ConnectorError", "Conversation", "exhausted", "json_of", "raise_for", "rate_limit_reset",
           "run_async", "run_sync", "same_origin"]
