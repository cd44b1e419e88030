"""Connecting a brand's Bluesky account through the desk's setup (what the Connections page and the CLI run)."""

from __future__ import annotations

import json

import pytest
from bluesky_servers import APP_PASSWORD, BRAND_DID, BRAND_HANDLE, FIXTURES, PdsServer

from caredesk.connectors.setup import SetupRefused, add_connection, test_connection
from factories import make_brand

pytestmark = pytest.mark.django_db


def test_an_app_password_connects_and_the_connection_test_polls(pds: PdsServer) -> None:
    pds.pds.notifications = json.loads((FIXTURES / "notifications.json").read_text(encoding="utf-8"))["notifications"]
    installation = add_connection(make_brand(), "bluesky", "Brand on Bluesky",
                                  {"service": pds.url, "handle": BRAND_HANDLE, "keywords": ["acme"]},
                                  {"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD})
    assert installation.own_handles == [BRAND_HANDLE]
    assert installation.get_credentials()["app_password"] == APP_PASSWORD
    report = test_connection(installation)
    assert report.lines()[0] == f"credentials work: @{BRAND_HANDLE}"
    assert report.fetched == 3 and report.rejected == 0  # the mention, the reply and the quote; not the like
    assert installation.own_account_ids == [BRAND_DID]


def test_a_wrong_app_password_or_plain_http_is_refused_before_anything_is_stored(pds: PdsServer) -> None:
    brand = make_brand()
    with pytest.raises(SetupRefused, match="Invalid identifier or password"):
        add_connection(brand, "bluesky", "x", {"service": pds.url}, {"identifier": BRAND_HANDLE,
                                                                      "app_password": "wrong-wrong-wrong"})
    with pytest.raises(SetupRefused, match="https"):
        add_connection(brand, "bluesky", "x", {"service": "http://bsky.social"},
                       {"identifier": BRAND_HANDLE, "app_password": APP_PASSWORD})
    with pytest.raises(SetupRefused, match="app_password"):
        add_connection(brand, "bluesky", "x", {"service": pds.url}, {"identifier": BRAND_HANDLE})
