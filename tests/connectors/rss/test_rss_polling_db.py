"""The whole path: a feed on a real server → the poll task → cases in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from rss_feed_server import FeedServer, Route, fixture

from caredesk.cases.models import Case, Post
from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.tasks import poll_installation, pollable_installation_ids
from factories import make_brand

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OUTAGE = "https://lastmile.example.net/2026/11/23/nimbus-fibre-outage-bristol-bath/"


def test_a_polled_blog_post_opens_a_case_linking_to_the_article(
    feeds: FeedServer, http: httpx.Client, rss_registered: None
):
    blog = feeds.serve("/feed/", Route(fixture("telecom_blog_rss2.xml"), etag='"v1"'))
    gone = feeds.serve("/gone.xml", Route(status=404))
    installation = do_create_installation(
        make_brand(), "rss", "Telecom press", {"feeds": [blog, gone], "keywords": ["Nimbus"],
                                               "exclude": ["we are hiring"]}
    )
    assert installation.pk in pollable_installation_ids()
    received = poll_installation(installation.pk, NOW, http)
    assert received == 5
    post = Post.objects.select_related("case", "author").get(installation=installation, url=OUTAGE)
    assert post.case is not None and post.case.brand_id == installation.brand_id
    assert post.text.startswith("Nimbus fibre outage leaves thousands offline across Bristol and Bath — ")
    assert post.author.platform == "rss" and post.author.handle == "lastmile.example.net"
    # One site is one author and one customer, so (by the desk's threading rule) its articles share its open case.
    assert Case.objects.filter(brand=installation.brand).count() == 1
    installation.refresh_from_db()
    # The poll succeeded though one feed is gone; that feed's error is in the cursor for an operator to see.
    assert installation.health == "ok" and installation.posts_received == 5
    assert installation.cursor["feeds"][gone]["error"] == "the feed is not there (HTTP 404): check its address"
    # The next poll asks conditionally, gets a 304, and stores nothing new.
    assert poll_installation(installation.pk, NOW + timedelta(minutes=5), http) == 0
    assert feeds.requests_for("/feed/")[-1].headers["if-none-match"] == '"v1"'
    assert Post.objects.filter(installation=installation).count() == 5


def test_an_installation_whose_feeds_all_fail_is_marked_degraded(
    feeds: FeedServer, http: httpx.Client, rss_registered: None
):
    storm = feeds.serve("/storm.xml", Route(status=502))
    installation = do_create_installation(make_brand(), "rss", "Down", {"feeds": [storm], "keywords": ["Nimbus"]})
    assert poll_installation(installation.pk, NOW, http) == 0
    installation = ConnectorInstallation.objects.get(pk=installation.pk)
    assert installation.health == "degraded"
    assert installation.last_error == "no feed could be read: the feed server failed (HTTP 502)"
