"""Connecting a brand's Reddit account through an installed or web app: send the admin to Reddit's authorize page
(``duration=permanent``, so Reddit gives a refresh token), then exchange the code Reddit appends to the redirect
URI for it. A script app needs none of this: its username and password are the credentials.

Pure functions over an injected HTTP client; storing the credentials is the caller's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from pydantic import SecretStr

from caredesk.connectors.base import AuthRevoked, Refused, Transient
from caredesk.connectors.builtin.mastodon.config import check_base_url
from caredesk.connectors.builtin.reddit.api import json_of, platform_message, raise_for
from caredesk.connectors.builtin.reddit.config import RedditCredentials

AUTH = "https://www.reddit.com"
SCOPES = "identity read privatemessages submit history"


def authorize_url(client_id: str, redirect_uri: str, state: str, *, auth: str = AUTH, scopes: str = SCOPES) -> str:
    """The page where the brand's admin logs in as the brand and allows the app."""
    query = {"client_id": client_id, "response_type": "code", "state": state, "redirect_uri": redirect_uri,
             "duration": "permanent", "scope": scopes}
    return f"{check_base_url(auth, 'Reddit auth')}/api/v1/authorize?{urlencode(query)}"


def code_from(pasted: str, state: str) -> str:
    """The code from what the admin pasted: the whole address Reddit sent the browser to (its ``state`` must be
    ours), or the code alone. Reddit's ``error=access_denied`` (the admin said no) is a refusal."""
    pasted = pasted.strip()
    if "?" not in pasted and "=" not in pasted:
        if not pasted:
            raise Refused("no code given")
        return pasted
    query = {k: v[-1] for k, v in parse_qs(urlsplit(pasted).query if "?" in pasted else pasted).items()}
    if query.get("error"):
        raise Refused(f"Reddit did not authorize the app ({query['error'][:60]})")
    if query.get("state") != state:
        raise Refused("the address pasted is not the answer to this authorization (its state differs): start over")
    code = query.get("code", "")
    if not code:
        raise Refused("the address pasted has no code")
    return code


def exchange_code(http: httpx.Client, client_id: str, client_secret: str | None, code: str, redirect_uri: str,
                  user_agent: str, *, auth: str = AUTH) -> RedditCredentials:
    """``POST /api/v1/access_token`` with ``grant_type=authorization_code``: the credentials to store."""
    data = {"grant_type": "authorization_code", "code": code.strip(), "redirect_uri": redirect_uri}
    url = f"{check_base_url(auth, 'Reddit auth')}/api/v1/access_token"
    try:
        response = http.post(url, data=data, auth=httpx.BasicAuth(client_id, client_secret or ""),
                             headers={"User-Agent": user_agent, "Accept": "application/json"})
    except httpx.TransportError as exc:
        raise Transient(f"could not reach Reddit to exchange the code ({type(exc).__name__})") from exc
    if response.status_code == 401:
        raise AuthRevoked("Reddit refused the app's client id or secret: check them")
    raise_for(response, "exchange the authorization code", datetime.now(UTC), None)
    body = json_of(response, "exchange the authorization code")
    if not isinstance(body, Mapping) or body.get("error"):
        raise AuthRevoked(f"Reddit did not accept the code ({platform_message(response)}): start over")
    refresh = body.get("refresh_token")
    if not isinstance(refresh, str) or not refresh:
        raise Refused("Reddit answered without a refresh token (was duration=permanent asked?)")
    return RedditCredentials(client_id=client_id, client_secret=SecretStr(client_secret) if client_secret else None,
                             refresh_token=SecretStr(refresh))
