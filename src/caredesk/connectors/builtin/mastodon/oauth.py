"""Connecting a Mastodon account: register caredesk as an app on the server, send the admin to the authorize page,
exchange the code it shows for a token. Or paste an access token made under Preferences → Development.

Pure functions over an injected HTTP client; storing the credentials is the caller's job. The redirect URI is the
out-of-band one, so the server shows the code for the admin to paste back: no public URL is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr

from caredesk.connectors.base import AuthRevoked, Refused, Transient
from caredesk.connectors.builtin.mastodon.api import USER_AGENT, json_of, raise_for
from caredesk.connectors.builtin.mastodon.config import MastodonCredentials, check_base_url

OOB_REDIRECT = "urn:ietf:wg:oauth:2.0:oob"
SCOPES = "read write"


@dataclass(frozen=True, slots=True)
class AppRegistration:
    client_id: str
    client_secret: SecretStr


def _post(http: httpx.Client, url: str, data: Mapping[str, str], what: str) -> Mapping[str, object]:
    try:
        response = http.post(url, data=data, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
    except httpx.TransportError as exc:
        raise Transient(f"could not reach Mastodon to {what} ({type(exc).__name__})") from exc
    if response.status_code in (400, 401, 403) and "oauth/token" in url:
        # RFC 6749: a wrong or used code, or a wrong client, is invalid_grant / invalid_client.
        raise AuthRevoked(f"Mastodon did not accept the authorization code ({response.text[:200]}): start over")
    raise_for(response, what)
    body = json_of(response, what)
    if not isinstance(body, Mapping):
        raise Transient(f"Mastodon's answer to {what} is not a JSON object")
    return body


def register_app(http: httpx.Client, instance: str, *, client_name: str = "caredesk", website: str | None = None,
                 scopes: str = SCOPES, redirect_uri: str = OOB_REDIRECT) -> AppRegistration:
    """``POST /api/v1/apps``: the client id and secret of caredesk on this server."""
    data = {"client_name": client_name, "redirect_uris": redirect_uri, "scopes": scopes}
    if website:
        data["website"] = website
    body = _post(http, f"{check_base_url(instance)}/api/v1/apps", data, "register the app")
    client_id, client_secret = body.get("client_id"), body.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(client_secret, str) or not client_id or not client_secret:
        raise Refused("Mastodon registered the app but sent no client id and secret")
    return AppRegistration(client_id, SecretStr(client_secret))


def authorize_url(instance: str, client_id: str, *, scopes: str = SCOPES, redirect_uri: str = OOB_REDIRECT,
                  state: str | None = None) -> str:
    """The page where the brand's admin logs in and allows caredesk; it then shows the code to paste back."""
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": scopes}
    if state:
        query["state"] = state
    return f"{check_base_url(instance)}/oauth/authorize?{urlencode(query)}"


def exchange_code(http: httpx.Client, instance: str, app: AppRegistration, code: str, *, scopes: str = SCOPES,
                  redirect_uri: str = OOB_REDIRECT) -> MastodonCredentials:
    """``POST /oauth/token`` with the authorization code: the credentials to store (Mastodon tokens do not
    expire, so there is no refresh token)."""
    data = {
        "grant_type": "authorization_code",
        "code": code.strip(),
        "client_id": app.client_id,
        "client_secret": app.client_secret.get_secret_value(),
        "redirect_uri": redirect_uri,
        "scope": scopes,
    }
    body = _post(http, f"{check_base_url(instance)}/oauth/token", data, "exchange the authorization code")
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise Refused("Mastodon answered the code exchange without an access token")
    return MastodonCredentials(access_token=SecretStr(token), client_id=app.client_id,
                               client_secret=app.client_secret)


def credentials_from_token(access_token: str) -> MastodonCredentials:
    """A pasted access token (Preferences → Development → New application on the server)."""
    token = access_token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token or any(c.isspace() for c in token):
        raise Refused("that does not look like a Mastodon access token")
    return MastodonCredentials(access_token=SecretStr(token))
