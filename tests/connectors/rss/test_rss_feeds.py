"""The RSS provider against a real HTTP server on 127.0.0.1 serving RSS 2.0, Atom 1.0 and RSS 1.0 fixtures."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from rss_feed_server import FeedServer, Route, Seen, fixture

from caredesk.connectors.base import (
    Capability,
    ConnectorError,
    FetchResult,
    NormalizedAuthor,
    OutboundReply,
    RateLimited,
    Refused,
    Transient,
)
from caredesk.connectors.builtin.rss import READ_ONLY, RssConfig, RssProvider
from caredesk.connectors.builtin.rss.fetching import MAX_FEED_BYTES

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ATOM = "application/atom+xml; charset=utf-8"


def provider(http: httpx.Client, feeds: list[str], **config: Any) -> RssProvider:
    config.setdefault("keywords", ["Nimbus"])
    return RssProvider(RssConfig(feeds=feeds, **config), {}, http)


def by_url(result: FetchResult) -> dict[str, Any]:
    return {p.url: p for p in result.posts}


def blog_items(body: bytes) -> tuple[bytes, list[bytes], bytes]:
    """The fixture blog split into its head, its items and its tail, to serve them in another order."""
    items = re.findall(rb"\t<item>.*?</item>\n", body, flags=re.S)
    head = body[: body.index(items[0])]
    tail = body[body.index(items[-1]) + len(items[-1]):]
    return head, items, tail


def test_a_blog_post_about_an_outage_becomes_a_post_linking_to_the_article(feeds: FeedServer, http: httpx.Client):
    url = feeds.serve("/feed/", Route(fixture("telecom_blog_rss2.xml")))
    result = provider(http, [url], exclude=["we are hiring"]).fetch({}, NOW)
    posts = by_url(result)
    outage = posts["https://lastmile.example.net/2026/11/23/nimbus-fibre-outage-bristol-bath/"]
    assert outage.text.startswith(
        "Nimbus fibre outage leaves thousands offline across Bristol and Bath — Customers of Nimbus in the BS and "
        "BA postcodes have been without broadband since about 6am, after what the company calls “a fault on a "
        "core router”."
    )
    assert outage.created_at == datetime(2026, 11, 23, 9, 40, tzinfo=UTC)
    assert outage.language == "en-gb"
    assert outage.author == NormalizedAuthor(external_id=url, handle="lastmile.example.net", name="Priya Raman")
    assert outage.external_id.startswith("rss:") and len(outage.external_id) <= 200
    assert outage.raw["keywords"] == ["Nimbus"]
    assert not outage.is_direct and not outage.in_reply_to_external_id
    if hasattr(outage, "summoned"):
        assert outage.summoned is False  # a keyword match: nobody addressed the brand
    # The Ofcom piece names the brand only in its body: the words around the mention are shown.
    ofcom = posts["https://lastmile.example.net/2026/11/22/ofcom-switching-rules-december/"]
    assert "Smaller firms such as Nimbus and Cirrus Broadband" in ofcom.text
    # The sponsored post matches an exclusion; the weekend reading does not mention the brand.
    assert "https://lastmile.example.net/2026/11/21/nimbus-hiring-leeds/" not in posts
    assert "https://lastmile.example.net/2026/11/19/weekend-reading-rural-masts/" not in posts
    # An unreadable date and one from 1875 become the time of the poll.
    assert posts["https://lastmile.example.net/2026/11/18/reader-question-nimbus-throttling/"].created_at == NOW
    podcast = posts[""]  # neither link nor guid: an id derived from its title, and no link to show
    assert podcast.text.startswith("Podcast: Nimbus CEO on the 2027 rollout") and podcast.created_at == NOW
    assert len(result.posts) == 5 and result.rejected == ()
    assert set(result.cursor["feeds"]) == {url}


def test_html_and_scripts_in_titles_and_summaries_become_plain_text(feeds: FeedServer, http: httpx.Client):
    url = feeds.serve("/feed/", Route(fixture("telecom_blog_rss2.xml")))
    posts = by_url(provider(http, [url]).fetch({}, NOW))
    apology = posts["https://lastmile.example.net/2026/11/20/nimbus-apology/"]
    assert apology.text == "Nimbus apology — The company says sorry for last week."
    for post in posts.values():
        for fragment in ("<", ">", "script", "alert", "onerror", "onclick", "iframe", "tracker.example"):
            assert fragment not in post.text, (fragment, post.text)
    # Entities are decoded once: the text is shown escaped, so "&amp;" would read as five characters.
    assert "–" in provider(http, [url]).whoami().display_name


def test_an_unchanged_feed_is_asked_conditionally_and_answers_304(feeds: FeedServer, http: httpx.Client):
    etag, modified = '"blog-v1"', "Mon, 23 Nov 2026 09:41:12 GMT"
    url = feeds.serve("/feed/", Route(fixture("telecom_blog_rss2.xml"), etag=etag, last_modified=modified))
    p = provider(http, [url])
    first = p.fetch({}, NOW)
    assert first.posts
    sent = feeds.requests_for("/feed/")[0].headers
    assert "if-none-match" not in sent and "if-modified-since" not in sent
    state = first.cursor["feeds"][url]
    assert state["etag"] == etag and state["last_modified"] == modified and state["seen"]
    second = p.fetch(first.cursor, NOW + timedelta(minutes=5))
    asked = feeds.requests_for("/feed/")[1].headers
    assert asked["if-none-match"] == etag and asked["if-modified-since"] == modified
    assert second.posts == () and second.rejected == ()
    assert second.cursor == first.cursor  # a 304 keeps everything, the entries seen included


def test_entries_are_never_delivered_twice_even_reordered_or_republished(feeds: FeedServer, http: httpx.Client):
    head, items, tail = blog_items(fixture("telecom_blog_rss2.xml"))
    url = feeds.serve("/feed/", Route(head + b"".join(items) + tail))  # no validators: always a full 200
    p = provider(http, [url])
    first = p.fetch({}, NOW)
    assert len(first.posts) == 6  # the five of the first test, and the sponsored one: nothing is excluded here
    assert p.fetch(first.cursor, NOW).posts == ()
    # The same entries in reverse order, the outage post re-published under a new guid, and one new post.
    new = (b"\t<item><title>Nimbus restores service</title>"
           b"<link>https://lastmile.example.net/2026/11/23/nimbus-restored/</link>"
           b"<guid isPermaLink=\"false\">https://lastmile.example.net/?p=48230</guid>"
           b"<pubDate>Mon, 23 Nov 2026 11:55:00 +0000</pubDate></item>\n")
    republished = [items[0].replace(b"?p=48213", b"?p=48213&amp;republished=1")] + items[1:]
    feeds.serve("/feed/", Route(head + new + b"".join(reversed(republished)) + tail))
    second = p.fetch(first.cursor, NOW + timedelta(minutes=5))
    assert [post.url for post in second.posts] == ["https://lastmile.example.net/2026/11/23/nimbus-restored/"]
    assert p.fetch(second.cursor, NOW + timedelta(minutes=10)).posts == ()
    # External ids are stable: read again with a fresh cursor, each entry gets the id it had (all but the one
    # re-published under a new guid, which the database would take for a new post).
    again = p.fetch({}, NOW)
    assert len({x.external_id for x in again.posts} & {x.external_id for x in first.posts}) == 5


def test_a_rate_limited_feed_waits_its_retry_after_while_the_others_deliver(feeds: FeedServer, http: httpx.Client):
    limited = feeds.serve("/limited.xml", Route(b"slow down", status=429, content_type="text/plain",
                                                headers={"Retry-After": "120"}))
    atom = feeds.serve("/atom.xml", Route(fixture("operators_news_atom.xml"), content_type=ATOM))
    p = provider(http, [limited, atom])
    first = p.fetch({}, NOW)
    assert {post.url for post in first.posts} == {
        "https://wire.example.org/en/2026/11/21/nimbus-cirrus-wholesale",
        "https://wire.example.org/de/2026/11/20/telekom-stoerung",
        "https://wire.example.org/en/2026/11/19/results",
    }
    [rejection] = first.rejected
    assert rejection.reason.startswith(limited + ": the feed server asks us to wait (HTTP 429)")
    assert rejection.raw == {"feed": limited, "error": rejection.reason.removeprefix(limited + ": "),
                             "kind": "RateLimited"}
    assert first.cursor["feeds"][limited]["retry_at"] == (NOW + timedelta(seconds=120)).isoformat()
    # Before the Retry-After has passed the feed is not asked at all; after it, it is.
    p.fetch(first.cursor, NOW + timedelta(seconds=60))
    assert len(feeds.requests_for("/limited.xml")) == 1
    p.fetch(first.cursor, NOW + timedelta(seconds=121))
    assert len(feeds.requests_for("/limited.xml")) == 2


def test_when_every_feed_is_rate_limited_the_poll_is(feeds: FeedServer, http: httpx.Client):
    a = feeds.serve("/a.xml", Route(status=429, headers={"Retry-After": "300"}))
    b = feeds.serve("/b.xml", Route(status=503, headers={"Retry-After": "Mon, 23 Nov 2026 12:02:00 GMT"}))
    with pytest.raises(RateLimited) as raised:
        provider(http, [a, b]).fetch({}, NOW)
    assert raised.value.retry_at == NOW + timedelta(minutes=2)  # the soonest of the two
    assert a in str(raised.value) or "HTTP 429" in str(raised.value)


def test_a_500_storm_on_one_feed_fails_that_feed_only(feeds: FeedServer, http: httpx.Client):
    storm = feeds.serve("/storm.xml", Route(b"<h1>Internal Server Error</h1>", status=500, content_type="text/html"))
    blog = feeds.serve("/feed/", Route(fixture("telecom_blog_rss2.xml"), etag='"v1"'))
    p = provider(http, [storm, blog])
    cursor: dict[str, Any] = {}
    delivered = 0
    for minute in range(4):
        result = p.fetch(cursor, NOW + timedelta(minutes=minute))
        delivered += len(result.posts)
        assert [r.reason for r in result.rejected] == [f"{storm}: the feed server failed (HTTP 500)"]
        cursor = dict(result.cursor)
    assert delivered == 6  # the blog's posts, once
    assert cursor["feeds"][storm]["failures"] == 4 and "retry_at" not in cursor["feeds"][storm]
    assert "error" not in cursor["feeds"][blog]
    # Alone, the failing feed fails the poll, as a failure that may pass.
    with pytest.raises(Transient, match="HTTP 500"):
        provider(http, [storm]).fetch({}, NOW)
    # Once it recovers, its error is cleared.
    feeds.serve("/storm.xml", Route(fixture("operators_news_atom.xml"), content_type=ATOM))
    healed = p.fetch(cursor, NOW + timedelta(minutes=5))
    assert "error" not in healed.cursor["feeds"][storm] and healed.rejected == ()


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (401, "the feed refuses access (HTTP 401): it needs a login caredesk does not have"),
        (403, "the feed refuses access (HTTP 403): it needs a login caredesk does not have"),
        (404, "the feed is not there (HTTP 404): check its address"),
        (410, "the feed is not there (HTTP 410): check its address"),
    ],
)
def test_a_feed_that_refuses_or_is_gone_is_reported_clearly(
    feeds: FeedServer, http: httpx.Client, status: int, reason: str
):
    bad = feeds.serve("/bad.xml", Route(b"no", status=status, content_type="text/plain"))
    blog = feeds.serve("/feed/", Route(fixture("telecom_blog_rss2.xml")))
    result = provider(http, [bad, blog]).fetch({}, NOW)
    assert len(result.posts) == 6
    assert [r.reason for r in result.rejected] == [f"{bad}: {reason}"]
    with pytest.raises(ConnectorError) as raised:
        provider(http, [bad]).fetch({}, NOW)
    assert not isinstance(raised.value, Transient | RateLimited)  # retrying cannot help: an admin must act
    assert reason in str(raised.value)


def test_malformed_xml_is_read_as_far_as_it_can_be_and_a_web_page_is_refused(feeds: FeedServer, http: httpx.Client):
    broken = feeds.serve("/broken.xml", Route(fixture("malformed_rss2.xml")))
    page = feeds.serve("/", Route(fixture("blog_homepage.html"), content_type="text/html; charset=utf-8"))
    garbage = feeds.serve("/garbage.xml", Route(b"\x89PNG\r\n\x1a\n\x00\x00binary", content_type="image/png"))
    atom = feeds.serve("/atom.xml", Route(fixture("operators_news_atom.xml"), content_type=ATOM))
    result = provider(http, [broken, page, garbage, atom]).fetch({}, NOW)
    urls = {post.url for post in result.posts}
    assert "https://broken.example.com/nimbus-router-review" in urls
    assert "https://wire.example.org/en/2026/11/21/nimbus-cirrus-wholesale" in urls
    reasons = [r.reason for r in result.rejected]
    assert any(r.startswith(f"{broken}: the feed is not well-formed") for r in reasons)
    assert f"{page}: the address serves a web page, not an RSS or Atom feed: use the feed's own address" in reasons
    assert any(r.startswith(f"{garbage}: the address does not serve an RSS or Atom feed") for r in reasons)


def test_an_oversize_feed_is_abandoned_declared_or_not(feeds: FeedServer, http: httpx.Client):
    huge = b"<rss version='2.0'><channel>" + b"<!-- padding -->" * (MAX_FEED_BYTES // 16 + 1) + b"</channel></rss>"
    declared = feeds.serve("/declared.xml", Route(huge))
    streamed = feeds.serve("/streamed.xml", Route(huge, chunked=True))
    atom = feeds.serve("/atom.xml", Route(fixture("operators_news_atom.xml"), content_type=ATOM))
    result = provider(http, [declared, streamed, atom]).fetch({}, NOW)
    assert len(result.posts) == 3
    assert [r.reason for r in result.rejected] == [
        f"{declared}: the feed is 5.0 MB, over the 5.0 MB limit",
        f"{streamed}: the feed is larger than the 5.0 MB limit",
    ]


def test_languages_filter_entries_that_declare_one(feeds: FeedServer, http: httpx.Client):
    atom = feeds.serve("/atom.xml", Route(fixture("operators_news_atom.xml"), content_type=ATOM))
    blog = feeds.serve("/feed/", Route(fixture("telecom_blog_rss2.xml")))  # declares en-GB for every item
    result = provider(http, [atom, blog], keywords=["Nimbus", "Telefónica"], languages=["es", "EN"]).fetch({}, NOW)
    languages = {post.url: post.language for post in result.posts}
    assert languages["https://wire.example.org/es/2026/11/23/caida-telefonica-madrid"] == "es"
    assert languages["https://wire.example.org/en/2026/11/21/nimbus-cirrus-wholesale"] == "en"  # the feed's
    assert "https://wire.example.org/pt/2026/11/22/telefonica-brasil-5g" not in languages  # pt-br
    assert "https://wire.example.org/de/2026/11/20/telekom-stoerung" not in languages  # de
    assert languages["https://lastmile.example.net/2026/11/23/nimbus-fibre-outage-bristol-bath/"] == "en-gb"
    # A feed that declares no language is not filtered.
    bare = feeds.serve("/bare.xml", Route(b"<rss version='2.0'><channel><title>t</title><item><title>Nimbus news"
                                          b"</title><link>https://bare.example/1</link></item></channel></rss>"))
    assert len(provider(http, [bare], languages=["fr"]).fetch({}, NOW).posts) == 1
    with pytest.raises(ValidationError, match="not a language tag"):
        RssConfig(feeds=[atom], keywords=["x"], languages=["english please"])


def test_unicode_keywords_across_atom_and_rss_1_0(feeds: FeedServer, http: httpx.Client):
    atom = feeds.serve("/atom.xml", Route(fixture("operators_news_atom.xml"), content_type=ATOM))
    rdf = feeds.serve("/index.rdf", Route(fixture("keitai_news_rdf.xml"), content_type="application/rdf+xml"))
    result = provider(http, [atom, rdf], keywords=["telefónica", "ドコモ"]).fetch({}, NOW)
    posts = by_url(result)
    assert set(posts) == {
        "https://wire.example.org/es/2026/11/23/caida-telefonica-madrid",
        "https://wire.example.org/pt/2026/11/22/telefonica-brasil-5g",
        "https://keitai.example.jp/news/2026/11/23/docomo-shougai.html",
    }
    docomo = posts["https://keitai.example.jp/news/2026/11/23/docomo-shougai.html"]
    assert docomo.text.startswith("NTTドコモで通信障害、関東の一部で音声通話がつながりにくく — "
                                  "23日午後、ドコモの回線で")
    assert docomo.created_at == datetime(2026, 11, 23, 8, 20, tzinfo=UTC) and docomo.language == "ja"
    assert docomo.author.handle == "keitai.example.jp" and docomo.author.name == "編集部"
    assert docomo.raw["keywords"] == ["ドコモ"]
    brasil = posts["https://wire.example.org/pt/2026/11/22/telefonica-brasil-5g"]
    assert brasil.text == ("Telefónica Brasil anuncia expansão do 5G — "
                           "A Vivo, marca da Telefónica, chega a mais 120 cidades.")
    assert brasil.author.name == "Operators Wire"  # no entry author: the feed's title
    assert brasil.created_at == datetime(2026, 11, 22, 17, 0, tzinfo=UTC)


def test_entries_the_database_could_not_store_are_rejected_and_the_rest_delivered(
    feeds: FeedServer, http: httpx.Client
):
    body = (b"<?xml version='1.0'?><rss version='2.0'><channel><title>Hostile</title>"
            b"<item><title>Nimbus &#0; with a NUL</title><link>https://h.example/nul</link></item>"
            b"<item><title>Nimbus &#xD800; half an emoji</title><link>https://h.example/surrogate</link></item>"
            b"<item><title>Nimbus &#x110000; past Unicode</title><link>https://h.example/big</link></item>"
            b"<item><title>Nimbus fine</title><link>javascript:alert(1)</link><guid>fine-1</guid></item>"
            b"</channel></rss>")
    url = feeds.serve("/hostile.xml", Route(body))
    p = provider(http, [url])
    result = p.fetch({}, NOW)
    texts = {post.text for post in result.posts}
    # Character references no string can hold read as U+FFFD instead of stopping the parser on the whole feed.
    assert texts == {"Nimbus \ufffd half an emoji", "Nimbus \ufffd past Unicode", "Nimbus fine"}
    assert {post.url for post in result.posts} == {"https://h.example/surrogate", "https://h.example/big", ""}
    [nul] = [r for r in result.rejected if "NUL" in r.reason]
    assert nul.reason == f"{url}: entry 'https://h.example/nul': the title or summary contains a NUL character"
    # Reported once, not at every poll.
    assert not [r for r in p.fetch(result.cursor, NOW).rejected if "NUL" in r.reason]


def test_a_seen_list_is_bounded_and_a_garbled_cursor_starts_the_feed_afresh(feeds: FeedServer, http: httpx.Client):
    items = "".join(f"<item><title>Nimbus item {n}</title><link>https://many.example/{n}</link></item>"
                    for n in range(1100))
    url = feeds.serve("/many.xml", Route(f"<rss version='2.0'><channel><title>Many</title>{items}</channel></rss>"
                                         .encode()))
    result = provider(http, [url]).fetch({}, NOW)
    assert len(result.posts) == 1000  # a feed's first thousand entries
    assert [r.reason for r in result.rejected] == [
        f"{url}: the feed has 1100 entries; only the first 1000 were read"
    ]
    assert len(result.cursor["feeds"][url]["seen"]) == 1000
    garbled = {"feeds": {url: {"seen": "nope", "etag": 5, "retry_at": "tomorrow", "failures": True}}}
    assert len(provider(http, [url]).fetch(garbled, NOW).posts) == 1000


def test_replies_are_refused_with_what_to_do_instead(http: httpx.Client):
    p = provider(http, ["https://lastmile.example.net/feed/"])
    assert p.capabilities == frozenset({Capability.POLL})
    rules = p.reply_rules()
    assert rules.problem("Sorry about the outage!") == READ_ONLY
    assert rules.problem("x", summoned=False) == READ_ONLY and rules.max_length == 0
    reply = OutboundReply("k1", "Sorry!", "rss:abc", NormalizedAuthor("https://x.example/feed", "x.example"))
    with pytest.raises(Refused, match="answered on the page itself: open the link"):
        p.send_reply(reply, NOW)


def test_whoami_reads_every_feed_and_names_each_that_fails(feeds: FeedServer, http: httpx.Client):
    blog = feeds.serve("/feed/", Route(fixture("telecom_blog_rss2.xml")))
    rdf = feeds.serve("/index.rdf", Route(fixture("keitai_news_rdf.xml")))
    identity = provider(http, [blog, rdf]).whoami()
    assert identity.account_ids == () and identity.handles == ()
    assert identity.display_name == "Last Mile – notes on broadband and mobile networks, ケータイ速報"
    gone = feeds.serve("/gone.xml", Route(status=410))
    with pytest.raises(ConnectorError) as raised:
        provider(http, [blog, gone]).whoami()
    assert str(raised.value) == (
        f"1 of 2 feeds cannot be read: {gone}: the feed is not there (HTTP 410): check its address"
    )


def test_the_config_refuses_what_cannot_be_polled():
    for feeds, match in (([], "at least 1"), (["ftp://x.example/feed"], "not an http"), (["https://"], "not an http"),
                         (["https://x.example/a b"], "spaces"), ([f"https://x.example/{n}" for n in range(201)],
                                                                  "at most 200")):
        with pytest.raises(ValidationError, match=match):
            RssConfig(feeds=feeds, keywords=["Nimbus"])
    with pytest.raises(ValidationError):
        RssConfig(feeds=["https://x.example/feed"], keywords=[])
    config = RssConfig(feeds=[" https://x.example/feed ", "https://x.example/feed"], keywords=[" Nimbus "])
    assert config.feeds == ["https://x.example/feed"] and config.keywords == ["Nimbus"]


def test_redirects_are_followed_and_relative_links_resolved_against_the_final_address(
    feeds: FeedServer, http: httpx.Client
):
    feeds.serve("/old", Route(status=301, headers={"Location": "/new/feed.xml"}))
    feeds.serve("/new/feed.xml", Route(b"<rss version='2.0'><channel><title>Moved</title><item><title>Nimbus"
                                       b"</title><link>post/1</link></item></channel></rss>"))
    [post] = provider(http, [feeds.url("/old")]).fetch({}, NOW).posts
    assert post.url == feeds.url("/new/post/1")
    seen: list[Seen] = feeds.requests_for("/new/feed.xml")
    assert seen[0].headers["user-agent"].startswith("caredesk-feed-reader/")


def test_a_gzip_bomb_is_cut_off_at_the_limit_after_decompression(feeds: FeedServer, http: httpx.Client):
    import gzip

    bomb = gzip.compress(b"<rss version='2.0'><channel>" + b" " * (MAX_FEED_BYTES + 1) + b"</channel></rss>")
    assert len(bomb) < 100_000
    url = feeds.serve("/bomb.xml", Route(bomb, headers={"Content-Encoding": "gzip"}))
    with pytest.raises(ConnectorError, match="larger than the 5.0 MB limit"):
        provider(http, [url]).fetch({}, NOW)


def test_entity_declarations_are_neither_expanded_nor_fetched(feeds: FeedServer, http: httpx.Client):
    laughs = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    body = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol0 "lol">{laughs}'
            f'<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            "<rss version='2.0'><channel><title>t</title><item><title>Nimbus &lol9; &xxe;</title>"
            "<link>https://laughs.example/1</link></item></channel></rss>").encode()
    url = feeds.serve("/laughs.xml", Route(body))
    [post] = provider(http, [url]).fetch({}, NOW).posts
    assert post.text == "Nimbus &lol9; &xxe;"  # left as written: nothing expanded, no file read


def test_a_feed_that_does_not_answer_in_time_fails_alone_as_transient(feeds: FeedServer):
    import threading

    released = threading.Event()

    def hang(_: Seen) -> Route:
        released.wait(5)  # longer than the client waits; let go at the end of the test
        return Route(fixture("telecom_blog_rss2.xml"))

    slow = feeds.serve("/slow.xml", hang)
    atom = feeds.serve("/atom.xml", Route(fixture("operators_news_atom.xml"), content_type=ATOM))
    try:
        with httpx.Client(timeout=0.5) as impatient:
            result = provider(impatient, [slow, atom]).fetch({}, NOW)
            assert len(result.posts) == 3
            assert [r.reason for r in result.rejected] == [f"{slow}: the feed server did not answer in time"]
            assert result.rejected[0].raw["kind"] == "Transient"
    finally:
        released.set()
