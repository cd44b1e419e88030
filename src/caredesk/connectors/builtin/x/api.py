"""Talking to the X API v2: one request at a time, with the user's OAuth 2.0 token, refreshed once on a 401, or
with the app's bearer token (streams, stream rules).

X rotates the refresh token on every refresh and the old one stops working, so a refresh is only done where the
new pair reaches the database: in a poll or a stream's catch-up, whose :class:`FetchResult` carries it
(``may_refresh``). Elsewhere (a reply, setup) an expired token raises :class:`TokenExpired` and the next poll
renews it.

A read that both the poll (sync client) and the stream (async client) make is written once, as a
:data:`Conversation`: a generator that yields :class:`Call` values and is sent back their (successful) responses;
:meth:`XClient.run`, :meth:`XClient.arun`, :func:`run_app` and :func:`arun_app` drive it over one or the other."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr, ValidationError

from caredesk.connectors.base import AuthRevoked, Transient
from caredesk.connectors.builtin.x.config import XCredentials
from caredesk.connectors.responses import json_body, raise_for_status, shortened

# When a 429 carries no usable reset time: X's windows are 15 minutes.
DEFAULT_RETRY = timedelta(minutes=15)
USER_AGENT = "caredesk (+https://github.com/caredesk/caredesk)"
TOKEN_HEADERS = {"User-Agent": USER_AGENT, "Accept": "application/json"}


def platform_message(response: httpx.Response) -> str:
    """X's own reason: v2 problem ``detail``/``title`` and the ``errors[]`` it lists (``errors[].message`` alone
    in older answers); shortened, as the body is not trusted."""
    try:
        body = response.json()
    except ValueError:
        body = None
    parts: list[str] = []
    if isinstance(body, Mapping):
        for name in ("detail", "title", "error_description", "error"):
            value = body.get(name)
            if isinstance(value, str) and value:
                parts.append(value)
                break
        # The errors name the reason where the problem's detail is generic ("One or more parameters to your
        # request was invalid." and then "CrcValidationFailed: ...").
        errors = body.get("errors")
        if isinstance(errors, list):
            for error in errors[:3]:
                if isinstance(error, Mapping):
                    text = error.get("detail") or error.get("message")
                    if isinstance(text, str) and text and text not in parts:
                        parts.append(text)
    return shortened(parts, response)


def rate_limit_reset(response: httpx.Response, now: datetime) -> datetime:
    """``x-rate-limit-reset`` is the window's end in unix seconds."""
    reset = response.headers.get("x-rate-limit-reset", "").strip()
    if reset.isdigit():
        try:
            return max(datetime.fromtimestamp(int(reset), UTC), now)
        except (OverflowError, OSError, ValueError):
            pass
    retry_after = response.headers.get("retry-after", "").strip()
    if retry_after.isdigit():
        return now + timedelta(seconds=int(retry_after))
    return now + DEFAULT_RETRY


def raise_for(response: httpx.Response, what: str, now: datetime) -> None:
    raise_for_status(response, "X", what, message=platform_message, retry_at=lambda: rate_limit_reset(response, now))


def json_of(response: httpx.Response, what: str) -> Any:
    return json_body(response, "X", what)


@dataclass(frozen=True, slots=True)
class Call:
    """One request of a :data:`Conversation`, ``path`` under the API base."""

    method: str
    path: str
    what: str  # for error messages: "read the brand's mentions"
    params: Mapping[str, Any] | None = None
    json: Any = None


T = TypeVar("T")
Conversation = Generator[Call, httpx.Response, T]


def _transport_error(exc: httpx.HTTPError, what: str) -> Transient:
    if isinstance(exc, httpx.TimeoutException):
        return Transient(f"X did not answer in time while trying to {what} ({type(exc).__name__})")
    return Transient(f"could not reach X to {what} ({type(exc).__name__}: {exc})")


def headers_for(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT, "Accept": "application/json"}


def app_raise_for(response: httpx.Response, what: str, now: datetime) -> None:
    if response.status_code == 401:
        raise AuthRevoked(f"X refused the app's bearer token while trying to {what} "
                          f"({platform_message(response)}): set a new one")
    raise_for(response, what, now)


def run_app(http: httpx.Client, base: str, bearer: str, conversation: Conversation[T], now: datetime) -> T:
    """Drive ``conversation`` with the app-only bearer token (no refresh: it does not expire)."""
    try:
        call = next(conversation)
        while True:
            try:
                response = http.request(call.method, base + call.path, params=call.params, json=call.json,
                                        headers=headers_for(bearer))
            except httpx.TransportError as exc:
                raise _transport_error(exc, call.what) from exc
            app_raise_for(response, call.what, now)
            call = conversation.send(response)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def arun_app(http: httpx.AsyncClient, base: str, bearer: str, conversation: Conversation[T],
                   now: datetime) -> T:
    try:
        call = next(conversation)
        while True:
            try:
                response = await http.request(call.method, base + call.path, params=call.params, json=call.json,
                                              headers=headers_for(bearer))
            except httpx.TransportError as exc:
                raise _transport_error(exc, call.what) from exc
            app_raise_for(response, call.what, now)
            call = conversation.send(response)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
def expiry(body: Mapping[str, Any], now: datetime) -> int | None:
    """When a token answer's access token stops working, in unix seconds (X: ``expires_in`` 7200)."""
    seconds = body.get("expires_in")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        return None
    return int(now.timestamp()) + seconds


class TokenExpired(AuthRevoked):
    """The access token expired and may not be renewed here (the rotated refresh token could not be stored)."""


class XClient:
    """Requests to ``base`` with the user's token; on a 401 it refreshes the token once and tries again."""

    def __init__(self, base: str, credentials: Mapping[str, Any], http: httpx.Client | None) -> None:
        self.base = base
        self.http = http
        try:
            self.credentials = XCredentials.model_validate(dict(credentials))
        except ValidationError as exc:
            raise AuthRevoked(f"X credentials are incomplete ({exc.error_count()} problems): reconnect") from None
        self.rotated: dict[str, Any] | None = None  # the new tokens after a refresh: the caller must store them
        self.may_refresh = False  # set while the caller can hand rotated tokens to the runtime

    def request(self, method: str, path: str, what: str, now: datetime, *, params: Mapping[str, Any] | None = None,
                json: Any = None) -> httpx.Response:
        response = self._send(method, path, what, params=params, json=json)
        if response.status_code == 401 and self.credentials.refresh_token is not None:
            if not self.may_refresh:
                raise TokenExpired(f"X refused the access token while trying to {what} "
                                   f"({platform_message(response)}); the next poll renews it")
            self.refresh(now)
            response = self._send(method, path, what, params=params, json=json)
        raise_for(response, what, now)
        return response

    def _http(self) -> httpx.Client:
        if self.http is None:
            raise RuntimeError("this X client has no sync HTTP client; use arun()")
        return self.http

    def run(self, conversation: Conversation[T], now: datetime) -> T:
        """Drive ``conversation`` over the sync client with the user's token."""
        try:
            call = next(conversation)
            while True:
                call = conversation.send(self.request(call.method, call.path, call.what, now, params=call.params,
                                                      json=call.json))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def arun(self, http: httpx.AsyncClient, conversation: Conversation[T], now: datetime) -> T:
        """Drive ``conversation`` over an async client with the user's token, refreshing it like :meth:`request`."""
        try:
            call = next(conversation)
            while True:
                response = await self._asend(http, call)
                if response.status_code == 401 and self.credentials.refresh_token is not None:
                    if not self.may_refresh:
                        raise TokenExpired(f"X refused the access token while trying to {call.what} "
                                           f"({platform_message(response)}); the next poll renews it")
                    url, data, auth = self._refresh_request()
                    try:
                        answer = await http.post(url, data=data, auth=auth, headers=TOKEN_HEADERS)
                    except httpx.TransportError as exc:
                        raise _transport_error(exc, "renew the access token") from exc
                    self._refreshed(answer, now)
                    response = await self._asend(http, call)
                raise_for(response, call.what, now)
                call = conversation.send(response)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _asend(self, http: httpx.AsyncClient, call: Call) -> httpx.Response:
        try:
            return await http.request(call.method, self.base + call.path, params=call.params, json=call.json,
                                      headers=headers_for(self.credentials.access_token.get_secret_value()))
        except httpx.TransportError as exc:
            raise _transport_error(exc, call.what) from exc

    def _send(self, method: str, path: str, what: str, *, params: Mapping[str, Any] | None,
              json: Any) -> httpx.Response:
        try:
            return self._http().request(method, self.base + path, params=params, json=json,
                                     headers=headers_for(self.credentials.access_token.get_secret_value()))
        except httpx.TransportError as exc:
            raise _transport_error(exc, what) from exc

    def _refresh_request(self) -> tuple[str, dict[str, str], httpx.Auth]:
        creds = self.credentials
        if creds.refresh_token is None or not creds.client_id:
            raise AuthRevoked("X refused the access token and there is no refresh token to renew it: reconnect")
        data = {"grant_type": "refresh_token", "refresh_token": creds.refresh_token.get_secret_value(),
                "client_id": creds.client_id}
        # A public client sends only its client_id: httpx.Auth() adds nothing.
        auth = httpx.BasicAuth(creds.client_id, creds.client_secret.get_secret_value()) if creds.client_secret \
            else httpx.Auth()
        return self.base + "/2/oauth2/token", data, auth

    def refresh(self, now: datetime) -> None:
        """``POST /2/oauth2/token`` with ``grant_type=refresh_token``; a confidential client authenticates with
        HTTP Basic, a public one sends its ``client_id``. Any refusal means the grant is gone: reconnect."""
        url, data, auth = self._refresh_request()
        try:
            response = self._http().post(url, data=data, auth=auth, headers=TOKEN_HEADERS)
        except httpx.TransportError as exc:
            raise _transport_error(exc, "renew the access token") from exc
        self._refreshed(response, now)

    def _refreshed(self, response: httpx.Response, now: datetime) -> None:
        creds = self.credentials
        if response.status_code >= 500 or response.status_code == 429:
            raise_for(response, "renew the access token", now)
        if response.status_code != 200:
            raise AuthRevoked(f"X refused to renew the access token ({platform_message(response)}): reconnect")
        body = json_of(response, "renew the access token")
        token = body.get("access_token") if isinstance(body, Mapping) else None
        if not isinstance(token, str) or not token:
            raise AuthRevoked("X's answer to the token renewal has no access token: reconnect")
        new_refresh = body.get("refresh_token")
        self.credentials = creds.model_copy(update={
            "expires_at": expiry(body, now),
            "access_token": SecretStr(token),
            # X rotates the refresh token; where an answer carries none, the old one stays the only one we have.
            "refresh_token": SecretStr(new_refresh) if isinstance(new_refresh, str) and new_refresh
            else creds.refresh_token,
        })
        self.rotated = self.credentials.to_storage()
