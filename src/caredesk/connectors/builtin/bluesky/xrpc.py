"""XRPC over plain httpx: the session (app-password login, refresh on expiry) and the mapping of XRPC errors to
the connector's typed errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from caredesk.connectors.base import AuthRevoked, ConnectorError, RateLimited, Refused, Transient

TIMEOUT = httpx.Timeout(20.0, connect=10.0)
# Errors meaning the access token is past its time (the reference PDS answers 400, others 401).
_EXPIRED = {"ExpiredToken"}
_BAD_TOKEN = {"InvalidToken", "AuthenticationRequired", "AuthMissing"}
# A Retry-After-less 429 waits this long.
DEFAULT_BACKOFF = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class XrpcError:
    status: int
    error: str
    message: str


def error_of(response: httpx.Response) -> XrpcError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    error, message = body.get("error"), body.get("message")
    return XrpcError(response.status_code, error if isinstance(error, str) else "",
                     message if isinstance(message, str) else "")


def typed_error(response: httpx.Response, what: str, now: datetime | None = None) -> ConnectorError:
    """The connector error for a failed XRPC ``response``; its message is the platform's, cut short."""
    err = error_of(response)
    detail = f"{what}: {err.error or response.status_code}" + (f" ({err.message[:300]})" if err.message else "")
    status = response.status_code
    if status == 429:
        return RateLimited(f"Bluesky rate limit: {detail}", retry_at(response, now))
    if status == 401 or (status == 400 and err.error in _EXPIRED | _BAD_TOKEN):
        return AuthRevoked(f"Bluesky refused the credentials: {detail}")
    if status >= 500 or status in (408, 425):
        return Transient(f"Bluesky is unavailable: {detail}")
    if 400 <= status < 500:
        return Refused(detail)
    return Transient(f"unexpected answer from Bluesky: {detail}")


def retry_at(response: httpx.Response, now: datetime | None = None) -> datetime:
    """When a 429 may be retried: ``ratelimit-reset`` (unix seconds) or ``retry-after`` (seconds)."""
    now = now or datetime.now(UTC)
    reset = response.headers.get("ratelimit-reset")
    if reset and reset.strip().isdigit():
        at = datetime.fromtimestamp(int(reset), UTC)
        # A reset in the past (clock skew) or absurdly far (a bad header) is not trusted as such.
        return min(max(at, now + timedelta(seconds=1)), now + timedelta(days=1))
    after = response.headers.get("retry-after")
    if after and after.strip().isdigit():
        return now + timedelta(seconds=min(int(after), 86400))
    return now + DEFAULT_BACKOFF


def plain(value: Any) -> str:
    """A credential as text, whether it comes decrypted from storage or still wrapped in ``SecretStr``."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if isinstance(value, str) else ""


class Session:
    """Calls XRPC methods as the brand: logs in with the app password when there is no token, refreshes an
    expired access token, and logs in again when the refresh token is gone too. ``rotated`` holds the tokens
    obtained since construction, for the runtime to store."""

    def __init__(self, http: httpx.Client | None, service: str, credentials: Mapping[str, Any]) -> None:
        self.http = http
        self.service = service
        self.identifier = plain(credentials.get("identifier"))
        self.app_password = plain(credentials.get("app_password"))
        self.access_jwt = plain(credentials.get("access_jwt"))
        self.refresh_jwt = plain(credentials.get("refresh_jwt"))
        self.did = plain(credentials.get("did"))
        self.handle = ""
        self.rotated: dict[str, Any] | None = None

    def url(self, method: str) -> str:
        return f"{self.service}/xrpc/{method}"

    def _send(self, method: str, *, params: Any = None, body: Any = None, token: str = "",
              headers: Mapping[str, str] | None = None) -> httpx.Response:
        if self.http is None:
            raise ConnectorError("the Bluesky session has no HTTP client")
        h = dict(headers or {})
        if token:
            h["authorization"] = f"Bearer {token}"
        try:
            if body is None:
                return self.http.get(self.url(method), params=params, headers=h, timeout=TIMEOUT)
            return self.http.post(self.url(method), json=body, headers=h, timeout=TIMEOUT)
        except httpx.TimeoutException as exc:
            raise Transient(f"Bluesky {method}: timed out") from exc
        except httpx.TransportError as exc:
            raise Transient(f"Bluesky {method}: {type(exc).__name__}") from exc

    def _store(self, body: Any, what: str) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("accessJwt"), str) \
                or not isinstance(body.get("refreshJwt"), str) or not isinstance(body.get("did"), str):
            raise Transient(f"Bluesky {what}: an answer without tokens")
        self.access_jwt, self.refresh_jwt, self.did = body["accessJwt"], body["refreshJwt"], body["did"]
        if isinstance(body.get("handle"), str):
            self.handle = body["handle"]
        self.rotated = {"identifier": self.identifier, "app_password": self.app_password,
                        "access_jwt": self.access_jwt, "refresh_jwt": self.refresh_jwt, "did": self.did}

    def login(self) -> None:
        if not self.identifier or not self.app_password:
            raise AuthRevoked("Bluesky needs the brand's handle and an app password")
        response = self._send("com.atproto.server.createSession",
                              body={"identifier": self.identifier, "password": self.app_password})
        if response.status_code == 200:
            self._store(response.json(), "createSession")
            return
        err = error_of(response)
        if response.status_code == 401 or (response.status_code == 400 and err.error == "AccountTakedown"):
            raise AuthRevoked(f"Bluesky refused the app password: {err.message or err.error or 'unauthorized'}")
        raise typed_error(response, "createSession")

    def refresh(self) -> bool:
        """Whether the refresh token still worked (False: log in again)."""
        if not self.refresh_jwt:
            return False
        response = self._send("com.atproto.server.refreshSession", body={}, token=self.refresh_jwt)
        if response.status_code == 200:
            self._store(response.json(), "refreshSession")
            return True
        if response.status_code in (400, 401):
            return False
        raise typed_error(response, "refreshSession")

    def call(self, method: str, *, params: Any = None, body: Any = None,
             headers: Mapping[str, str] | None = None) -> httpx.Response:
        """The response to an authenticated call (any status but an auth failure, which is dealt with here)."""
        if not self.access_jwt:
            self.login()
        response = self._send(method, params=params, body=body, token=self.access_jwt, headers=headers)
        if response.status_code not in (400, 401):
            return response
        err = error_of(response)
        if err.error in _EXPIRED:
            if not self.refresh():
                self.login()
        elif response.status_code == 401 or err.error in _BAD_TOKEN:
            self.login()  # a token the PDS no longer knows (signed out elsewhere): the app password decides
        else:
            return response
        response = self._send(method, params=params, body=body, token=self.access_jwt, headers=headers)
        if response.status_code == 401 or error_of(response).error in _EXPIRED | _BAD_TOKEN:
            raise AuthRevoked(f"Bluesky refused a fresh session for {method}")
        return response

    def ensure_did(self) -> str:
        if not self.did:
            self.login()
        return self.did
