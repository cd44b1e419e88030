"""Talking to Reddit's OAuth API: a bearer token from ``/api/v1/access_token`` (password grant for a script app,
refresh token grant for an installed or web app), renewed when its hour is up or on a 401; the required unique
User-Agent on every request; and the ``X-Ratelimit-*`` headers of every answer, which the provider spends its
requests by.

Reddit does not rotate refresh tokens, so renewing a token anywhere (a reply, setup) loses nothing; a renewed
token is still handed back (:attr:`RedditClient.renewed`) so a poll can store it and the next poll need not ask
again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr, ValidationError

from caredesk.connectors.base import AuthRevoked, Transient
from caredesk.connectors.builtin.reddit.config import RedditConfig, RedditCredentials
from caredesk.connectors.responses import json_body, raise_for_status, shortened

# When a 429 carries no usable reset: Reddit's window is at most 10 minutes; a minute is the usual wait.
DEFAULT_RETRY = timedelta(minutes=1)
# A token this close to its end is renewed first, so it cannot run out between the check and the request.
TOKEN_MARGIN = timedelta(minutes=2)
_TRY_AGAIN = re.compile(r"try again in (\d+) (millisecond|second|minute|hour)", re.IGNORECASE)
_UNITS = {"millisecond": 0.001, "second": 1, "minute": 60, "hour": 3600}


@dataclass(frozen=True, slots=True)
class ApiError:
    """One of the ``json.errors`` of an ``api_type=json`` answer: ``["THREAD_LOCKED", "message", "parent"]``."""

    code: str
    message: str
    field: str


def api_errors(body: Any) -> list[ApiError]:
    """The errors Reddit put in a 200 answer's ``json.errors`` (empty when it did what was asked)."""
    wrapper = body.get("json") if isinstance(body, Mapping) else None
    errors = wrapper.get("errors") if isinstance(wrapper, Mapping) else None
    found = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, Sequence) and not isinstance(error, str) and error:
            code, message, field = (list(error) + ["", "", ""])[:3]
            found.append(ApiError(str(code or "")[:60], " ".join(str(message or "").split())[:300],
                                  str(field or "")[:60]))
    return found


def wait_asked(message: str, now: datetime) -> datetime | None:
    """The time a ``RATELIMIT`` error's message asks to wait for ("… try again in 6 minutes."), if it says."""
    found = _TRY_AGAIN.search(message)
    if not found:
        return None
    seconds = int(found.group(1)) * _UNITS[found.group(2).lower()]
    return now + timedelta(seconds=math.ceil(seconds) + 1)


def platform_message(response: httpx.Response) -> str:
    """Reddit's own reason for an error status (``{"message": "Forbidden", "error": 403}``, an OAuth ``error``
    or ``json.errors``), shortened; the body is not trusted."""
    try:
        body = response.json()
    except ValueError:
        body = None
    parts: list[str] = []
    if isinstance(body, Mapping):
        for name in ("message", "reason", "error_description", "explanation"):
            value = body.get(name)
            if isinstance(value, str) and value:
                parts.append(value)
        error = body.get("error")
        if isinstance(error, str) and error and not parts:
            parts.append(error)
        parts.extend(f"{e.code}: {e.message}" for e in api_errors(body)[:3])
    return shortened(parts, response)


def _seconds(value: str) -> float | None:
    try:
        parsed = float(value.strip())
    except ValueError:
        return None
    return parsed if math.isfinite(parsed) and parsed >= 0 else None


def _retry_at(response: httpx.Response, now: datetime, reset: float | None) -> datetime:
    wait = reset if reset is not None else _seconds(response.headers.get("retry-after", ""))
    return now + timedelta(seconds=math.ceil(wait)) if wait is not None else now + DEFAULT_RETRY


def raise_for(response: httpx.Response, what: str, now: datetime, reset: float | None) -> None:
    raise_for_status(response, "Reddit", what, message=platform_message,
                     retry_at=lambda: _retry_at(response, now, reset))


def json_of(response: httpx.Response, what: str) -> Any:
    return json_body(response, "Reddit", what)


def parse_credentials(credentials: Mapping[str, Any]) -> RedditCredentials:
    try:
        return RedditCredentials.model_validate(dict(credentials))
    except ValidationError as exc:
        raise AuthRevoked(f"Reddit credentials are incomplete ({exc.error_count()} problems): reconnect") from None


class RedditClient:
    """Requests to the API with the brand's token and the app's User-Agent; counts them and keeps what the
    ``X-Ratelimit-*`` headers of the last answer said."""

    def __init__(self, config: RedditConfig, credentials: Mapping[str, Any], http: httpx.Client) -> None:
        self.config = config
        self.http = http
        self.credentials = parse_credentials(credentials)
        self.user_agent = config.user_agent()
        self.renewed: dict[str, Any] | None = None  # new token (and refresh token, if Reddit sent one) to store
        self.requests = 0  # API calls made (the token endpoint is not counted against the 100 a minute)
        self.remaining: float | None = None  # X-Ratelimit-Remaining of the last answer
        self.reset: float | None = None  # X-Ratelimit-Reset: seconds until the window starts again
        self.used: int | None = None  # X-Ratelimit-Used

    def headers(self, token: str | None = None) -> dict[str, str]:
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"bearer {token}"
        return headers

    # -- the token ---------------------------------------------------------------------------------------------

    def token(self, now: datetime) -> str:
        creds = self.credentials
        expires = creds.access_token_expires_at
        if creds.access_token is not None and expires is not None and expires - TOKEN_MARGIN > now \
                and creds.access_token_grant == creds.grant_fingerprint():
            return creds.access_token.get_secret_value()
        return self.renew(now)

    def renew(self, now: datetime) -> str:
        """A new access token from ``POST /api/v1/access_token`` (HTTP Basic with the client id and secret; an
        installed app's secret is empty). A refusal means the app or the grant is gone: reconnect."""
        creds = self.credentials
        if creds.refresh_token is not None:
            data = {"grant_type": "refresh_token", "refresh_token": creds.refresh_token.get_secret_value()}
        else:
            data = {"grant_type": "password", "username": creds.username,
                    "password": creds.password.get_secret_value() if creds.password else ""}
        secret = creds.client_secret.get_secret_value() if creds.client_secret else ""
        try:
            response = self.http.post(self.config.auth + "/api/v1/access_token", data=data,
                                      auth=httpx.BasicAuth(creds.client_id, secret), headers=self.headers())
        except httpx.TimeoutException as exc:
            raise Transient(f"Reddit did not answer in time while renewing the token ({type(exc).__name__})") \
                from exc
        except httpx.TransportError as exc:
            raise Transient(f"could not reach Reddit to renew the token ({type(exc).__name__}: {exc})") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise_for(response, "renew the access token", now, None)
        if response.status_code == 401:
            raise AuthRevoked("Reddit refused the app's client id or secret while renewing the token: check them")
        if response.status_code != 200:
            raise AuthRevoked(f"Reddit refused to renew the access token ({platform_message(response)}): reconnect")
        body = json_of(response, "renew the access token")
        error = body.get("error") if isinstance(body, Mapping) else "not a JSON object"
        if error:
            # Reddit answers a wrong password or a revoked refresh token with 200 and {"error": "invalid_grant"}.
            raise AuthRevoked(f"Reddit refused the {creds.grant.replace('_', ' ')} ({str(error)[:80]}): reconnect")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthRevoked("Reddit's answer to the token renewal has no access token: reconnect")
        lifetime = body.get("expires_in")
        seconds = lifetime if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) else 3600
        new_refresh = body.get("refresh_token")
        renewed = creds.model_copy(update={
            "access_token": SecretStr(token),
            "access_token_expires_at": now + timedelta(seconds=max(0.0, float(seconds))),
            # Reddit keeps a refresh token for good, but should it ever send a new one, that one is the one to keep.
            "refresh_token": SecretStr(new_refresh) if isinstance(new_refresh, str) and new_refresh
            and creds.refresh_token is not None else creds.refresh_token,
        })
        self.credentials = renewed.model_copy(update={"access_token_grant": renewed.grant_fingerprint()})
        self.renewed = self.credentials.to_storage()
        return token

    # -- requests ----------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, what: str, now: datetime, *, params: Mapping[str, Any] | None = None,
                data: Mapping[str, Any] | None = None) -> httpx.Response:
        """``method path`` with ``raw_json=1`` (bodies as written, not HTML-escaped); a 401 renews the token
        once and asks again. Errors become the contract's typed errors."""
        query = {**(params or {}), "raw_json": 1}
        response = self._send(method, path, what, self.token(now), query, data)
        if response.status_code == 401:
            response = self._send(method, path, what, self.renew(now), query, data)
        raise_for(response, what, now, self.reset)
        return response

    def _send(self, method: str, path: str, what: str, token: str, params: Mapping[str, Any],
              data: Mapping[str, Any] | None) -> httpx.Response:
        self.requests += 1
        try:
            response = self.http.request(method, self.config.api + path, params=params, data=data,
                                         headers=self.headers(token))
        except httpx.TimeoutException as exc:
            raise Transient(f"Reddit did not answer in time while trying to {what} ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise Transient(f"could not reach Reddit to {what} ({type(exc).__name__}: {exc})") from exc
        self._limits(response)
        return response

    def _limits(self, response: httpx.Response) -> None:
        remaining = _seconds(response.headers.get("x-ratelimit-remaining", ""))
        if remaining is not None:
            self.remaining = remaining
        reset = _seconds(response.headers.get("x-ratelimit-reset", ""))
        if reset is not None:
            self.reset = reset
        used = _seconds(response.headers.get("x-ratelimit-used", ""))
        if used is not None:
            self.used = int(used)

    def resets_at(self, now: datetime) -> datetime:
        return now + (timedelta(seconds=math.ceil(self.reset)) if self.reset is not None else DEFAULT_RETRY)


def aware_utc(value: Any) -> datetime | None:
    """A ``created_utc`` (unix seconds, a float) as an aware UTC datetime; None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
