"""The Connections page: a brand's admins see, add, test, enable and disable its connections; nobody else does."""

from __future__ import annotations

import pytest
from django.test import Client

from caredesk.connectors.models import ConnectorInstallation
from csp_markup import blocked
from factories import make_brand, make_installation, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def brands() -> tuple:
    return make_brand("Nimbus"), make_brand("Acme")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_admin_sees_only_their_brands_connections(brands) -> None:
    nimbus, acme = brands
    mine = make_installation(nimbus)
    theirs = make_installation(acme)
    admin = _client(make_user("nadmin", role="admin", brands=[nimbus]))
    page = admin.get("/settings/connections/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'id="connection-{mine.pk}"' in html and f'id="connection-{theirs.pk}"' not in html
    assert 'href="/settings/connections/"' in admin.get("/").content.decode()  # the inbox links to it
    for url in (f"/settings/connections/{theirs.pk}/test", f"/settings/connections/{theirs.pk}/enabled"):
        assert admin.post(url, {"enabled": "0"}).status_code == 404
    assert ConnectorInstallation.objects.get(pk=theirs.pk).enabled


@pytest.mark.parametrize("role", ["supervisor", "agent", "volunteer"])
def test_people_who_are_not_admins_get_404(brands, role: str) -> None:
    nimbus, _ = brands
    installation = make_installation(nimbus)
    client = _client(make_user(f"p-{role}", role=role, brands=[nimbus]))
    assert client.get("/settings/connections/").status_code == 404
    assert client.post(f"/settings/connections/{installation.pk}/enabled", {"enabled": "0"}).status_code == 404
    assert 'href="/settings/connections/"' not in client.get("/").content.decode()


def test_add_a_connection_from_the_form_then_test_disable_and_enable(brands) -> None:
    nimbus, _ = brands
    admin = _client(make_user("nadmin", role="admin", brands=[nimbus]))
    fields = admin.get("/settings/connections/fields?provider=replay").content.decode()
    assert 'name="config-speed"' in fields and 'name="config-platform"' in fields
    response = admin.post("/settings/connections/add", {
        "brand": nimbus.pk, "provider": "replay", "name": "Nimbus on Bluesky (replay)",
        "config-brand": "nimbus", "config-platform": "bluesky", "config-speed": "10", "config-loop": "on",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    installation = ConnectorInstallation.objects.get(name="Nimbus on Bluesky (replay)")
    assert installation.config["platform"] == "bluesky" and installation.config["speed"] == 10
    tested = admin.post(f"/settings/connections/{installation.pk}/test").content.decode()
    assert "not stored" in tested and "notice--ok" in tested
    admin.post(f"/settings/connections/{installation.pk}/enabled", {"enabled": "0"})
    assert not ConnectorInstallation.objects.get(pk=installation.pk).enabled
    admin.post(f"/settings/connections/{installation.pk}/enabled", {"enabled": "1"})
    assert ConnectorInstallation.objects.get(pk=installation.pk).enabled


def test_a_refused_connection_says_why_and_escapes_what_was_typed(brands) -> None:
    nimbus, acme = brands
    admin = _client(make_user("nadmin", role="admin", brands=[nimbus]))
    hostile = '<script>alert(1)</script>'
    bad_speed = admin.post("/settings/connections/add", {
        "brand": nimbus.pk, "provider": "replay", "name": hostile, "config-speed": "-3"})
    assert bad_speed.status_code == 422
    html = bad_speed.content.decode()
    assert "invalid config for replay: speed" in html and hostile not in html and "&lt;script&gt;" in html
    other_brand = admin.post("/settings/connections/add", {
        "brand": acme.pk, "provider": "replay", "name": "sneaky"})
    assert other_brand.status_code == 422  # not one of the choices
    assert not ConnectorInstallation.objects.exists()


def test_the_connections_page_has_nothing_the_csp_blocks(brands) -> None:
    nimbus, _ = brands
    make_installation(nimbus)
    admin = _client(make_user("nadmin", role="admin", brands=[nimbus]))
    assert blocked(admin.get("/settings/connections/").content.decode()) == []
    assert blocked(admin.get("/settings/connections/fields?provider=replay").content.decode() + "<p></p>") == []


def test_an_admin_edits_the_listening_rules_without_touching_the_credentials(brands) -> None:
    from caredesk.connectors.actions import do_create_installation

    nimbus, _ = brands
    installation = do_create_installation(
        nimbus, "mastodon", "Nimbus on Mastodon",
        {"instance": "http://127.0.0.1:9", "keywords": ["nimbus"], "hashtags": ["nimbusdown"]},
        {"access_token": "the-stored-token"},
    )
    version = installation.config_version
    admin = _client(make_user("nadmin", role="admin", brands=[nimbus]))
    form = admin.get(f"/settings/connections/{installation.pk}/edit").content.decode()
    assert "nimbusdown" in form and "the-stored-token" not in form  # a secret is never shown again
    assert 'name="config-public_timeline"' in form and "<select" in form
    response = admin.post(f"/settings/connections/{installation.pk}/edit", {
        "config-instance": "http://127.0.0.1:9", "config-keywords": "nimbus\nnimbus fiber", "config-hashtags": "",
        "config-exclude": "nimbus cloud", "config-public_timeline": "off", "config-reply_visibility": "parent",
    })
    assert response.status_code == 302, response.content.decode()[:1500]
    changed = ConnectorInstallation.objects.get(pk=installation.pk)
    assert changed.config["keywords"] == ["nimbus", "nimbus fiber"] and changed.config["hashtags"] == []
    assert changed.config["exclude"] == ["nimbus cloud"]
    assert changed.config_version > version  # a running listener reconnects with the new rules
    assert changed.get_credentials() == {"access_token": "the-stored-token"}
    bad = admin.post(f"/settings/connections/{installation.pk}/edit", {
        "config-instance": "ftp://example.org", "config-public_timeline": "off", "config-reply_visibility": "parent"})
    assert bad.status_code == 422 and "invalid config for mastodon" in bad.content.decode()
    assert blocked(form) == []


def test_the_page_shows_each_connections_health(brands) -> None:
    from datetime import UTC, datetime, timedelta

    from caredesk.connectors.models import RawPayload

    nimbus, _ = brands
    installation = make_installation(nimbus)
    ConnectorInstallation.objects.filter(pk=installation.pk).update(
        newest_post_at=datetime.now(UTC) - timedelta(seconds=42), rate_limit_remaining=17,
        last_error="<b>503</b> from the platform")
    RawPayload.objects.create(installation=installation, source="stream", body=b"{}", status="failed",
                              error="boom", received_at=datetime.now(UTC))
    admin = _client(make_user("nadmin", role="admin", brands=[nimbus]))
    html = admin.get("/settings/connections/").content.decode()
    assert "17 calls left" in html and "1 failed payloads" in html and "&lt;b&gt;503&lt;/b&gt;" in html
    assert any(f"{n} s" in html for n in (42, 43, 44))
