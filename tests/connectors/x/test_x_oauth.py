"""The PKCE pieces of X's OAuth 2.0 flow against the fake X server: RFC 7636's S256 vector, single-use codes,
and what an admin may paste back."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fake_x import CLIENT_ID, FakeX

from caredesk.connectors.base import AuthRevoked, Refused
from caredesk.connectors.builtin.x import oauth

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REDIRECT = "https://desk.example/x/callback"


def test_s256_is_rfc_7636s() -> None:
    # RFC 7636, appendix B.
    assert oauth.code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == \
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_each_start_has_its_own_verifier_and_state() -> None:
    one, two = oauth.start(CLIENT_ID, REDIRECT), oauth.start(CLIENT_ID, REDIRECT)
    assert one.state != two.state and one.verifier.get_secret_value() != two.verifier.get_secret_value()
    assert 43 <= len(one.verifier.get_secret_value()) <= 128
    assert one.url.startswith("https://x.com/i/oauth2/authorize?response_type=code&client_id=client-abc&")
    assert one.verifier.get_secret_value() not in one.url
    with pytest.raises(Refused, match="redirect URI"):
        oauth.start(CLIENT_ID, "oob")
    with pytest.raises(Refused, match="client id"):
        oauth.start(" ", REDIRECT)


def test_what_may_be_pasted_back() -> None:
    assert oauth.code_from(f"{REDIRECT}?state=s1&code=abc", "s1") == "abc"
    assert oauth.code_from("  abc \n", "s1") == "abc"  # a bare code
    assert oauth.code_from("state=s1&code=abc", "s1") == "abc"  # the query alone
    with pytest.raises(Refused, match="state"):
        oauth.code_from(f"{REDIRECT}?state=s2&code=abc", "s1")
    with pytest.raises(Refused, match="state"):
        oauth.code_from(f"{REDIRECT}?code=abc", "s1")
    with pytest.raises(Refused, match="no code"):
        oauth.code_from(f"{REDIRECT}?state=s1", "s1")
    with pytest.raises(Refused, match="no code given"):
        oauth.code_from("", "s1")
    with pytest.raises(Refused, match="neither"):
        oauth.code_from("two words", "s1")


def test_a_code_works_once_and_only_with_its_verifier(fake: FakeX, http: httpx.Client) -> None:
    flow = oauth.start(CLIENT_ID, REDIRECT, authorize_url=f"{fake.url}/i/oauth2/authorize")
    redirect = httpx.get(flow.url, follow_redirects=False).headers["location"]
    code = oauth.code_from(redirect, flow.state)
    other = oauth.start(CLIENT_ID, REDIRECT)  # another verifier
    with pytest.raises(AuthRevoked, match="did not accept the authorization code"):
        oauth.exchange_code(http, fake.url, CLIENT_ID, None, code, other, NOW)
    # Refused once, the code is gone (single use), even with the right verifier.
    with pytest.raises(AuthRevoked):
        oauth.exchange_code(http, fake.url, CLIENT_ID, None, code, flow, NOW)
    flow = oauth.start(CLIENT_ID, REDIRECT, authorize_url=f"{fake.url}/i/oauth2/authorize")
    code = parse_qs(urlsplit(httpx.get(flow.url, follow_redirects=False).headers["location"]).query)["code"][0]
    credentials = oauth.exchange_code(http, fake.url, CLIENT_ID, None, code, flow, NOW)
    assert credentials.expires_at == int(NOW.timestamp()) + 7200
    assert credentials.refresh_token is not None
    with pytest.raises(AuthRevoked):
        oauth.exchange_code(http, fake.url, CLIENT_ID, None, code, flow, NOW)  # used


def test_no_refresh_token_means_offline_access_was_not_granted() -> None:
    with pytest.raises(Refused, match="offline.access"):
        oauth.credentials_from_token_answer({"access_token": "a", "expires_in": 7200}, CLIENT_ID, None, NOW)
