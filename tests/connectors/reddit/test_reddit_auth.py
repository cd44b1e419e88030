"""Reddit's OAuth through the provider against the fake server: the password grant (script app) and the refresh
token grant (installed app), HTTP Basic checked, the hour-long token kept and renewed on expiry or a 401, and the
configuration's checks (User-Agent parts, https)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fake_reddit import CLIENT_ID, CODE, OUR_ID, OUR_NAME, REFRESH, SCRIPT_APP, SECRET, FakeReddit, message
from pydantic import ValidationError

from caredesk.connectors.base import AuthRevoked
from caredesk.connectors.builtin.reddit import RedditConfig, RedditCredentials, RedditProvider, oauth

Make = Callable[..., RedditProvider]
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
INSTALLED_APP = {"client_id": CLIENT_ID, "refresh_token": REFRESH}


def _basic(request: object) -> tuple[str, str]:
    header = request.headers["authorization"]  # type: ignore[attr-defined]
    client_id, _, secret = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
    return client_id, secret


def test_a_script_app_logs_in_with_the_password_grant(make_provider: Make, fake: FakeReddit) -> None:
    provider = make_provider()
    identity = provider.whoami(NOW)
    assert identity.handles == (OUR_NAME,) and identity.account_ids == (f"t2_{OUR_ID}",)
    token = fake.requests_to("POST", "/api/v1/access_token")
    assert len(token) == 1
    assert token[0].form == {"grant_type": "password", "username": OUR_NAME, "password": SCRIPT_APP["password"]}
    assert _basic(token[0]) == (CLIENT_ID, SECRET)
    assert fake.requests_to("GET", "/api/v1/me")[0].headers["authorization"].startswith("bearer access-")
    assert provider.learned_config() == {"username": OUR_NAME}


def test_an_installed_app_uses_its_refresh_token_with_an_empty_secret(make_provider: Make, fake: FakeReddit) -> None:
    fake.state.inbox = [message("a", "hello")]
    result = make_provider(INSTALLED_APP, username=OUR_NAME).fetch({}, NOW)
    token = fake.requests_to("POST", "/api/v1/access_token")
    assert token[0].form == {"grant_type": "refresh_token", "refresh_token": REFRESH}
    assert _basic(token[0]) == (CLIENT_ID, "")
    # The new token travels back to be stored; Reddit sent no new refresh token, so the old one stays.
    assert result.credentials is not None
    assert result.credentials["refresh_token"] == REFRESH
    assert result.credentials["access_token"].startswith("access-")
    assert result.credentials["access_token_expires_at"] == (NOW + timedelta(hours=1)).isoformat()


def test_a_stored_token_is_used_until_its_hour_is_up(make_provider: Make, fake: FakeReddit) -> None:
    stored = make_provider(INSTALLED_APP, username=OUR_NAME).fetch({}, NOW).credentials
    assert stored is not None
    make_provider(stored, username=OUR_NAME).fetch({}, NOW + timedelta(minutes=30))
    assert len(fake.requests_to("POST", "/api/v1/access_token")) == 1
    again = make_provider(stored, username=OUR_NAME).fetch({}, NOW + timedelta(minutes=59))
    assert len(fake.requests_to("POST", "/api/v1/access_token")) == 2  # too close to its end: renewed first
    assert again.credentials is not None and again.credentials["access_token"] != stored["access_token"]


def test_a_401_renews_the_token_once_and_asks_again(make_provider: Make, fake: FakeReddit) -> None:
    stored = make_provider(INSTALLED_APP, username=OUR_NAME).fetch({}, NOW).credentials
    assert stored is not None
    fake.state.access_tokens.clear()  # Reddit forgot it
    fake.state.inbox = [message("b", "after the 401")]
    result = make_provider(stored, username=OUR_NAME).fetch({}, NOW + timedelta(minutes=5))
    assert [p.external_id for p in result.posts] == ["t4_b"]
    assert result.credentials is not None and result.credentials["access_token"] != stored["access_token"]


@pytest.mark.parametrize(("credentials", "reason"), [
    ({**SCRIPT_APP, "client_secret": "wrong"}, "client id or secret"),
    ({**SCRIPT_APP, "password": "wrong"}, "invalid_grant"),
    ({"client_id": CLIENT_ID, "refresh_token": "revoked"}, "invalid_grant"),
])
def test_refused_credentials_say_so(make_provider: Make, fake: FakeReddit, credentials: dict[str, str],
                                    reason: str) -> None:
    with pytest.raises(AuthRevoked, match=reason):
        make_provider(credentials).whoami(NOW)
    assert fake.requests_to("GET", "/api/v1/me") == []


def test_the_fake_refuses_a_default_user_agent(fake: FakeReddit) -> None:
    # What the provider is tested against: Reddit throttles default User-Agents (python-httpx/…).
    with httpx.Client() as http:
        answer = http.post(f"{fake.url}/api/v1/access_token", data={"grant_type": "password"},
                           auth=(CLIENT_ID, SECRET))
    assert answer.status_code == 403 and "User-Agent" in answer.json()["message"]


def test_the_user_agent_is_built_from_checked_parts() -> None:
    config = RedditConfig(app_id="com.acme.care", contact_username="/u/acme_ops", app_version="2.1",
                          app_platform="linux")
    assert config.user_agent() == "linux:com.acme.care:2.1 (by /u/acme_ops)"
    with pytest.raises(ValidationError, match="no spaces or colons"):
        RedditConfig(app_id="my app:1", contact_username="acme_ops")
    with pytest.raises(ValidationError, match="Reddit username"):
        RedditConfig(app_id="com.acme.care", contact_username="a b")
    with pytest.raises(ValidationError, match="contact_username"):
        RedditConfig.model_validate({"app_id": "com.acme.care"})
    with pytest.raises(ValidationError, match="https"):
        RedditConfig(app_id="com.acme.care", contact_username="acme_ops", api="http://oauth.reddit.com")
    with pytest.raises(ValidationError, match="needs keywords"):
        RedditConfig(app_id="com.acme.care", contact_username="acme_ops", subreddits=["r/AskReddit"])
    listening = RedditConfig(app_id="a", contact_username="acme_ops", subreddits=["r/AskReddit", "askreddit"],
                             keywords=["acme"])
    assert listening.subreddits == ("AskReddit",)


def test_credentials_need_a_grant() -> None:
    with pytest.raises(ValidationError, match="either a refresh_token"):
        RedditCredentials(client_id=CLIENT_ID)
    with pytest.raises(ValidationError, match="needs its client_secret"):
        RedditCredentials.model_validate({"client_id": CLIENT_ID, "username": "acme", "password": "pw"})


def test_the_authorization_code_becomes_a_refresh_token(fake: FakeReddit, http: httpx.Client) -> None:
    url = oauth.authorize_url(CLIENT_ID, "http://127.0.0.1:8000/cb", "st4te", auth=fake.url)
    assert url == (f"{fake.url}/api/v1/authorize?client_id={CLIENT_ID}&response_type=code&state=st4te&redirect_uri="
                   "http%3A%2F%2F127.0.0.1%3A8000%2Fcb&duration=permanent&scope=identity+read+privatemessages+"
                   "submit+history")
    code = oauth.code_from(f"http://127.0.0.1:8000/cb?state=st4te&code={CODE}", "st4te")
    credentials = oauth.exchange_code(http, CLIENT_ID, None, code, "http://127.0.0.1:8000/cb",
                                      "server:a:1 (by /u/acme_ops)", auth=fake.url)
    assert credentials.to_storage()["refresh_token"] == REFRESH
    assert fake.requests_to("POST", "/api/v1/access_token")[0].form["grant_type"] == "authorization_code"
    with pytest.raises(Exception, match="state differs"):
        oauth.code_from(f"http://127.0.0.1:8000/cb?state=other&code={CODE}", "st4te")
    with pytest.raises(Exception, match="access_denied"):
        oauth.code_from("http://127.0.0.1:8000/cb?state=st4te&error=access_denied", "st4te")
    with pytest.raises(AuthRevoked, match="did not accept the code"):
        oauth.exchange_code(http, CLIENT_ID, None, "used", "http://127.0.0.1:8000/cb", "server:a:1 (by /u/acme_ops)",
                            auth=fake.url)


def test_a_kept_token_is_not_used_with_other_credentials(make_provider: Make, fake: FakeReddit) -> None:
    stored = make_provider(username=OUR_NAME).fetch({}, NOW).credentials
    assert stored is not None
    # An admin changed the password (a new account, perhaps): the token kept from the old one is not used.
    changed = {**stored, "password": "a-new-password"}
    fake.state.password = "a-new-password"
    make_provider(changed, username=OUR_NAME).whoami(NOW + timedelta(minutes=1))
    tokens = fake.requests_to("POST", "/api/v1/access_token")
    assert len(tokens) == 2 and tokens[1].form["password"] == "a-new-password"
