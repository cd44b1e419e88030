"""Connecting the brand's X account: OAuth 2.0 authorization code with PKCE (S256).

:func:`start` makes a fresh verifier, its challenge and a state and builds the authorize URL on x.com; the brand's
admin logs in there and X redirects to the app's registered callback with ``code`` and ``state``. :func:`code_from`
reads what the admin pasted back (the whole redirect URL, or the bare code) and checks the state;
:func:`exchange_code` swaps the code for tokens at ``POST /2/oauth2/token``. Pure functions over an injected HTTP
client: storing the credentials is the caller's job (they are a refresh token: store them at once).

X has no out-of-band redirect: the redirect URI must be one registered in the app's settings on the developer
portal, exactly. It need not answer: the admin can copy the URL the browser was sent to, even onto an error page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from pydantic import SecretStr

from caredesk.connectors.base import AuthRevoked, Refused, Transient
from caredesk.connectors.builtin.mastodon.config import check_base_url
from caredesk.connectors.builtin.x.api import USER_AGENT, expiry, json_of, platform_message, raise_for
from caredesk.connectors.builtin.x.config import XCredentials

AUTHORIZE_URL = "https://x.com/i/oauth2/authorize"
SCOPES = ("tweet.read", "tweet.write", "users.read", "dm.read", "dm.write", "offline.access")
# RFC 7636: a verifier of 43 to 128 characters from the unreserved set; token_urlsafe(64) gives 86 of them.
VERIFIER_BYTES = 64


@dataclass(frozen=True, slots=True)
class Authorization:
    """One authorization attempt: the URL to send the admin to, and what to keep until they come back (the
    verifier is a secret: never shown, never logged)."""

    url: str
    state: str
    verifier: SecretStr
    redirect_uri: str


def code_challenge(verifier: str) -> str:
    """S256: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def start(client_id: str, redirect_uri: str, *, authorize_url: str = AUTHORIZE_URL,
          scopes: tuple[str, ...] = SCOPES) -> Authorization:
    if not client_id.strip():
        raise Refused("the X app's client id is missing (developer portal → the app → Keys and tokens)")
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Refused(f"the redirect URI must be an http(s) URL registered for the app, not {redirect_uri[:80]!r}")
    verifier = secrets.token_urlsafe(VERIFIER_BYTES)
    state = secrets.token_urlsafe(24)
    query = {"response_type": "code", "client_id": client_id.strip(), "redirect_uri": redirect_uri,
             "scope": " ".join(scopes), "state": state, "code_challenge": code_challenge(verifier),
             "code_challenge_method": "S256"}
    page = urlsplit(authorize_url.strip())
    base = check_base_url(f"{page.scheme}://{page.netloc}" if page.scheme else authorize_url, "X authorize page")
    if page.query or page.fragment:
        raise ValueError("the X authorize page URL must have no query: caredesk adds its own")
    return Authorization(url=f"{base}{page.path}?{urlencode(query)}", state=state, verifier=SecretStr(verifier),
                         redirect_uri=redirect_uri)


def code_from(pasted: str, state: str | None) -> str:
    """The authorization code in what the admin pasted: the redirect URL (its ``state`` must be ours; X's own
    ``error`` is said as such) or the bare code. ``state`` None: a bare code alone is expected (the web flow
    always has the state, the terminal may not; PKCE still binds the code to our verifier)."""
    text = pasted.strip()
    if not text:
        raise Refused("no code given")
    if "?" not in text and "=" not in text:
        if any(c.isspace() for c in text) or len(text) > 512:
            raise Refused("that is neither the redirect URL nor an authorization code")
        return text
    query = {k: v[-1] for k, v in parse_qs(urlsplit(text).query if "?" in text else text).items()}
    if "error" in query:
        reason = query.get("error_description") or query["error"]
        raise Refused(f"X did not authorize caredesk ({reason[:200]})")
    code = query.get("code", "")
    if not code:
        raise Refused("the pasted URL has no code: paste the whole address X redirected to")
    if state is not None and not hmac.compare_digest(query.get("state", ""), state):
        raise Refused("the state in that URL is not this authorization's: start again (it may be an old or "
                      "forged link)")
    return code


def exchange_code(http: httpx.Client, api: str, client_id: str, client_secret: str | None, code: str,
                  authorization: Authorization, now: datetime) -> XCredentials:
    """``POST /2/oauth2/token`` with ``grant_type=authorization_code``, the code and our verifier; a confidential
    client authenticates with HTTP Basic. A used or wrong code (or verifier) is :class:`AuthRevoked`: start over."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": authorization.redirect_uri,
            "code_verifier": authorization.verifier.get_secret_value(), "client_id": client_id}
    auth = httpx.BasicAuth(client_id, client_secret) if client_secret else httpx.USE_CLIENT_DEFAULT
    what = "exchange the authorization code"
    try:
        response = http.post(check_base_url(api, "X API") + "/2/oauth2/token", data=data, auth=auth,
                             headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
    except httpx.TimeoutException as exc:
        raise Transient(f"X did not answer in time while trying to {what} ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise Transient(f"could not reach X to {what} ({type(exc).__name__}: {exc})") from exc
    if response.status_code in (400, 401, 403):
        raise AuthRevoked(f"X did not accept the authorization code ({platform_message(response)}): start over")
    raise_for(response, what, now)
    return credentials_from_token_answer(json_of(response, what), client_id, client_secret, now)


def credentials_from_token_answer(body: object, client_id: str, client_secret: str | None,
                                  now: datetime) -> XCredentials:
    if not isinstance(body, Mapping):
        raise Transient("X's token answer is not a JSON object")
    token, refresh = body.get("access_token"), body.get("refresh_token")
    if not isinstance(token, str) or not token:
        raise Refused("X answered the code exchange without an access token")
    if not isinstance(refresh, str) or not refresh:
        raise Refused("X sent no refresh token: the app must ask for the offline.access scope")
    scope = body.get("scope")
    return XCredentials(access_token=SecretStr(token), refresh_token=SecretStr(refresh), client_id=client_id,
                        client_secret=SecretStr(client_secret) if client_secret else None,
                        expires_at=expiry(body, now), scope=scope if isinstance(scope, str) else "")

