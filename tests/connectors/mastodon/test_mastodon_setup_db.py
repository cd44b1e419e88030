"""Connecting a brand's Mastodon account through the desk's setup (what the Connections page and the CLI run)."""

from __future__ import annotations

import pytest
from fake_mastodon import TOKEN, FakeMastodon, mention, status

from caredesk.connectors.builtin.mastodon import MastodonProvider
from caredesk.connectors.setup import SetupRefused, add_connection, test_connection
from factories import make_brand

pytestmark = pytest.mark.django_db


def test_a_pasted_token_connects_and_the_connection_test_polls(fake: FakeMastodon,
                                                               registered: type[MastodonProvider]) -> None:
    fake.notifications.append(mention("1", status("11", "@trwnh hello", mention_us=True)))
    installation = add_connection(make_brand(), "mastodon", "Brand on mastodon.social",
                                  {"instance": fake.url, "hashtags": ["caredesk"]}, {"access_token": TOKEN})
    assert installation.own_handles == ["trwnh"]
    fake_limit = fake.max_characters
    assert installation.config["max_characters"] == fake_limit  # the server's own limit, kept at setup
    assert installation.get_credentials() == {"access_token": TOKEN, "client_id": None, "client_secret": None}
    report = test_connection(installation)
    assert report.fetched == 1 and report.lines()[0] == "credentials work: @trwnh"


def test_a_wrong_token_is_refused_before_anything_is_stored(fake: FakeMastodon,
                                                            registered: type[MastodonProvider]) -> None:
    with pytest.raises(SetupRefused, match="The access token is invalid"):
        add_connection(make_brand(), "mastodon", "x", {"instance": fake.url}, {"access_token": "wrong"})
    with pytest.raises(SetupRefused, match="https"):
        add_connection(make_brand(), "mastodon", "x", {"instance": "http://mastodon.social"}, {"access_token": "t"})


def test_the_servers_own_limit_is_what_the_composer_counts_against(fake: FakeMastodon,
                                                                   registered: type[MastodonProvider]) -> None:
    from caredesk.connectors.runtime import get_provider

    fake.max_characters = 1000
    installation = add_connection(make_brand(), "mastodon", "Brand on a roomy server", {"instance": fake.url},
                                  {"access_token": TOKEN})
    assert get_provider(installation).reply_rules().max_length == 1000
    chosen = add_connection(make_brand("Other"), "mastodon", "Set by the admin",
                            {"instance": fake.url, "max_characters": 600}, {"access_token": TOKEN})
    assert chosen.config["max_characters"] == 600
