"""Connecting the brand's X account from the Connections page: "Connect X account" sends the admin to X with a
state and PKCE challenge kept in their session; X's redirect back to /settings/connections/<id>/x/callback is
checked (state, single use) and the tokens are stored encrypted. Admins only."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.test import Client, override_settings
from fake_x import ACCESS, CLIENT_ID, REFRESH, FakeX

from caredesk.connectors.builtin.x import XProvider
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.setup import add_connection
from caredesk.connectors.tasks import poll_installation
from factories import make_brand, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def installation(fake: FakeX, registered: type[XProvider]) -> ConnectorInstallation:
    return add_connection(make_brand("Nimbus"), "x", "Nimbus on X", {"api": fake.url},
                          {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID})


def _admin(installation: ConnectorInstallation) -> Client:
    client = Client()
    client.force_login(make_user("nadmin", role="admin", brands=[installation.brand]))
    return client


def _connect(client: Client, installation: ConnectorInstallation, fake: FakeX) -> str:
    """Press the button, let X approve: the callback URL X sends the browser to."""
    with override_settings(CAREDESK_X_AUTHORIZE_URL=f"{fake.url}/i/oauth2/authorize"):
        response = client.post(f"/settings/connections/{installation.pk}/x/connect")
    assert response.status_code == 302
    location = response["location"]
    assert location.startswith(f"{fake.url}/i/oauth2/authorize?response_type=code&client_id={CLIENT_ID}&")
    query = parse_qs(urlsplit(location).query)
    assert query["redirect_uri"] == [f"http://testserver/settings/connections/{installation.pk}/x/callback"]
    approved = httpx.get(location, follow_redirects=False)
    assert approved.status_code == 302
    return approved.headers["location"].removeprefix("http://testserver")


def test_connect_the_account_in_the_browser(fake: FakeX, installation: ConnectorInstallation) -> None:
    client = _admin(installation)
    edit = client.get(f"/settings/connections/{installation.pk}/edit").content.decode()
    assert "Connect X account" in edit
    ConnectorInstallation.objects.filter(pk=installation.pk).update(auth_revoked_at=datetime.now(UTC))
    callback = _connect(client, installation, fake)
    done = client.get(callback)
    assert done.status_code == 302 and done["location"] == f"/settings/connections/?changed={installation.pk}"
    stored = ConnectorInstallation.objects.get(pk=installation.pk)
    [token] = fake.state.access_tokens
    assert stored.get_credentials()["access_token"] == token != ACCESS
    assert stored.auth_revoked_at is None  # reconnected: polls go on
    assert token not in stored.credentials_encrypted
    fake.state.mentions = []
    assert poll_installation(installation.pk, datetime.now(UTC)) == 0
    assert fake.requests_to("GET", "/2/users/me")[-1].headers["authorization"] == f"Bearer {token}"
    # The state was used: the same callback again is refused.
    again = client.get(callback)
    assert again.status_code == 422 and "no X authorization was started" in again.content.decode()


def test_a_forged_state_is_refused_and_nothing_is_exchanged(fake: FakeX, installation: ConnectorInstallation) -> None:
    client = _admin(installation)
    callback = _connect(client, installation, fake)
    forged = callback.replace("state=", "state=x")
    refused = client.get(forged)
    assert refused.status_code == 422 and "state" in refused.content.decode()
    assert fake.requests_to("POST", "/2/oauth2/token") == []
    assert ConnectorInstallation.objects.get(pk=installation.pk).get_credentials()["access_token"] == ACCESS


def test_xs_refusal_is_said(fake: FakeX, installation: ConnectorInstallation) -> None:
    client = _admin(installation)
    _connect(client, installation, fake)
    key = f"x_oauth:{installation.pk}"
    state = client.session[key]["state"]
    page = client.get(f"/settings/connections/{installation.pk}/x/callback?error=access_denied&state={state}")
    assert page.status_code == 422 and "X did not authorize caredesk (access_denied)" in page.content.decode()
    _connect(client, installation, fake)
    state = client.session[key]["state"]
    hostile = client.get(f"/settings/connections/{installation.pk}/x/callback",
                         {"error": "x", "error_description": "<script>alert(1)</script>", "state": state})
    html = hostile.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html


@pytest.mark.parametrize("role", ["supervisor", "agent"])
def test_only_admins(fake: FakeX, installation: ConnectorInstallation, role: str) -> None:
    client = Client()
    client.force_login(make_user(f"p-{role}", role=role, brands=[installation.brand]))
    assert client.post(f"/settings/connections/{installation.pk}/x/connect").status_code == 404
    assert client.get(f"/settings/connections/{installation.pk}/x/callback?code=a&state=b").status_code == 404
