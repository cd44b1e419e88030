"""Talking to the X API v2: one request at a time, with the user's OAuth 2.0 token, refreshed once on a 401.

X rotates the refresh token on every refresh and the old one stops working, so a refresh is only done where the
new pair reaches the database: in a poll, whose :class:`FetchResult` carries it (``may_refresh``). Elsewhere (a
reply, setup) an expired token raises :class:`TokenExpired` and the next poll renews it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from caredesk.connectors.base import AuthRevoked, RateLimited, Refused, Transient
from caredesk.connectors.builtin.x.config import XCredentials

# When a 429 carries no usable reset time: X's windows are 15 minutes.
DEFAULT_RETRY = timedelta(minutes=15)
USER_AGENT = "caredesk (+https://github.com/caredesk/caredesk)"


def platform_message(response: httpx.Response) -> str:
    """X's own reason: v2 problem ``detail``/``title``, or the ``errors[].message`` of older answers; shortened,
    as the body is not trusted."""
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
        errors = body.get("errors")
        if not parts and isinstance(errors, list):
            for error in errors[:3]:
                if isinstance(error, Mapping):
                    text = error.get("detail") or error.get("message")
                    if isinstance(text, str) and text:
                        parts.append(text)
    message = " ".join(" ".join(parts).split()) or response.reason_phrase or f"HTTP {response.status_code}"
    return message[:300] + ("…" if len(message) > 300 else "")


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
    status = response.status_code
    if 200 <= status < 300:
        return
    message = platform_message(response)
    if status == 401:
        raise AuthRevoked(f"X refused the access token while trying to {what} ({message}): reconnect")
    if status == 429:
        retry_at = rate_limit_reset(response, now)
        raise RateLimited(f"X rate limit reached while trying to {what}; retry at {retry_at:%H:%M:%S} UTC", retry_at)
    if status >= 500 or status == 408:
        raise Transient(f"X answered {status} while trying to {what} ({message})")
    raise Refused(f"X refused to {what} ({status}: {message})")


def json_of(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise Transient(f"X sent a body that is not JSON while trying to {what}") from None


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

    def __init__(self, base: str, credentials: Mapping[str, Any], http: httpx.Client) -> None:
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

    def _send(self, method: str, path: str, what: str, *, params: Mapping[str, Any] | None,
              json: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.credentials.access_token.get_secret_value()}",
                   "User-Agent": USER_AGENT, "Accept": "application/json"}
        try:
            return self.http.request(method, self.base + path, params=params, json=json, headers=headers)
        except httpx.TimeoutException as exc:
            raise Transient(f"X did not answer in time while trying to {what} ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Transient(f"could not reach X to {what} ({type(exc).__name__}: {exc})") from exc

    def refresh(self, now: datetime) -> None:
        """``POST /2/oauth2/token`` with ``grant_type=refresh_token``; a confidential client authenticates with
        HTTP Basic, a public one sends its ``client_id``. Any refusal means the grant is gone: reconnect."""
        creds = self.credentials
        if creds.refresh_token is None or not creds.client_id:
            raise AuthRevoked("X refused the access token and there is no refresh token to renew it: reconnect")
        data = {"grant_type": "refresh_token", "refresh_token": creds.refresh_token.get_secret_value(),
                "client_id": creds.client_id}
        auth = httpx.BasicAuth(creds.client_id, creds.client_secret.get_secret_value()) if creds.client_secret \
            else httpx.USE_CLIENT_DEFAULT
        try:
            response = self.http.post(self.base + "/2/oauth2/token", data=data, auth=auth,
                                      headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
        except httpx.TimeoutException as exc:
            raise Transient(f"X did not answer in time while renewing the token ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Transient(f"could not reach X to renew the token ({type(exc).__name__}: {exc})") from exc
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
