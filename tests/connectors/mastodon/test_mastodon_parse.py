"""Documented payloads → posts, HTML → text, config validation, length rules: no server needed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fake_mastodon import OUR_ID, customer, fixture, status
from pydantic import ValidationError

from caredesk.connectors.base import MalformedPayload
from caredesk.connectors.builtin.mastodon import MastodonConfig
from caredesk.connectors.builtin.mastodon.account import InstanceInfo
from caredesk.connectors.builtin.mastodon.parse import html_to_text, parse_link_header, post_from_status
from caredesk.connectors.builtin.mastodon.timelines import Cursor, Sorter
from caredesk.connectors.listening import ListeningRules


def test_documented_mention_notification_becomes_a_post() -> None:
    notification = fixture("stream_notification_mention.json")
    post = post_from_status(notification["status"])
    assert post.external_id == "108914343542683797"
    assert post.text == "@trwnh test"
    assert post.created_at == datetime(2022, 8, 30, 23, 9, 52, 359000, tzinfo=UTC)
    assert post.author.external_id == "108892712797543112"
    assert post.author.handle == "a@pl.nulled.red"
    assert post.author.name == "a"
    assert post.author.followers == 0
    assert post.url == "https://pl.nulled.red/objects/64b196c6-3bc5-44d5-8ffb-f760235ee6ca"
    assert post.language == ""
    assert not post.is_direct
    assert post.summoned


def test_documented_conversation_is_a_direct_post_with_its_conversation_id() -> None:
    sorter = Sorter(OUR_ID, ListeningRules())
    [post] = sorter.direct(fixture("stream_conversation.json"))
    assert post.is_direct
    assert post.conversation_external_id == "819516"
    assert post.text == "test @trwnh"


def test_documented_update_keeps_reply_reference() -> None:
    post = post_from_status(fixture("stream_update.json"))
    assert post.in_reply_to_external_id == "108914298452377720"
    assert post.text == "@disarray glad i was able to help"
    assert post.author.followers == 37


def test_hostile_html_is_reduced_to_the_text_a_reader_sees() -> None:
    content = (
        '<p>Hello <script>alert("owned")</script><b onclick="x()">there</b> &amp; &lt;b&gt;not bold&lt;/b&gt;'
        "<style>p{display:none}</style></p><p>line one<br>line two<br/>line three</p>"
        '<p><a href="https://evil.example/"><span class="invisible">https://</span>'
        '<span class="ellipsis">example.com/a-long</span><span class="invisible">-path</span></a></p>'
        "<img src=x onerror=alert(1)><iframe src=javascript:alert(1)></iframe>&#x1F600;"
    )
    text = html_to_text(content)
    assert "alert" not in text and "display:none" not in text and "onclick" not in text
    assert text == ("Hello there & <b>not bold</b>\n\nline one\nline two\nline three\n\n"
                    "https://example.com/a-long-path\n\n\U0001f600")


def test_html_edge_cases() -> None:
    assert html_to_text("") == ""
    assert html_to_text("plain text, no markup") == "plain text, no markup"
    assert html_to_text("<p>unclosed <b>tags") == "unclosed tags"
    assert html_to_text("<script>never closed") == ""
    assert html_to_text("a&nbsp;b &#39;quoted&#39; &bogus; </p></p>") == "a b 'quoted' &bogus;"


def test_spoiler_text_is_part_of_the_post() -> None:
    post = post_from_status(status("5", "the details", spoiler_text="billing problem"))
    assert post.text == "billing problem\n\nthe details"


def test_a_boost_is_the_boosted_status() -> None:
    inner = status("7", "original words", author=customer("99", "orig@example.social"))
    post = post_from_status(status("8", "", reblog=inner))
    assert (post.external_id, post.text, post.author.handle) == ("7", "original words", "orig@example.social")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"created_at": "yesterday"}, "created_at"),
        ({"created_at": None}, "created_at"),
        ({"account": "someone"}, "account"),
        ({"id": None}, "no id"),
        ({"content": {"html": 1}}, "content"),
        ({"content": "<p>nul \x00 inside</p>"}, "NUL"),
    ],
)
def test_broken_status_fields_are_a_clear_error(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedPayload, match=reason):
        post_from_status(status("9", "x", **changes))


def test_link_header() -> None:
    links = parse_link_header('<https://m.example/api/v1/notifications?max_id=1>; rel="next", '
                              '<https://m.example/api/v1/notifications?min_id=9>; rel="prev"')
    assert links == {"next": "https://m.example/api/v1/notifications?max_id=1",
                     "prev": "https://m.example/api/v1/notifications?min_id=9"}


def test_listening_sorter_marks_leads_unsummoned_and_filters() -> None:
    rules = ListeningRules(keywords=("caredesk",), hashtags=("caredesk",), exclude=("job offer",), languages=("en",))
    sorter = Sorter(OUR_ID, rules)
    lead = sorter.listened(status("1", "my CareDesk login is broken", tags=("caredesk",)))
    assert lead is not None and not lead.summoned and lead.matched_keywords in (("caredesk",), ("#caredesk",))
    addressed = sorter.listened(status("2", "@trwnh help #caredesk", mention_us=True))
    assert addressed is not None and addressed.summoned
    assert sorter.listened(status("3", "caredesk job offer here")) is None
    assert sorter.listened(status("4", "caredesk ist kaputt", language="de")) is None
    assert sorter.listened(status("5", "nothing relevant")) is None
    ours = status("6", "caredesk news", author=fixture("verify_credentials.json"))
    assert sorter.listened(ours) is None


def test_config_validation() -> None:
    assert MastodonConfig(instance="mastodon.social/").instance == "https://mastodon.social"
    assert MastodonConfig(instance="http://127.0.0.1:8000").instance == "http://127.0.0.1:8000"
    assert MastodonConfig(instance="https://m.example", hashtags=("#CareDesk", "caredesk ")).hashtags == (
        "CareDesk", "caredesk")
    for bad in ("http://mastodon.social", "ftp://mastodon.social", "https://m.example/api", "https://"):
        with pytest.raises(ValidationError):
            MastodonConfig(instance=bad)
    with pytest.raises(ValidationError, match="hashtag"):
        MastodonConfig(instance="https://m.example", hashtags=("not a tag",))
    with pytest.raises(ValidationError, match="keywords"):
        MastodonConfig(instance="https://m.example", public_timeline="local")


def test_cursor_round_trip_and_bad_cursor() -> None:
    cursor = Cursor.from_mapping({"notifications": "12", "tags": {"caredesk": "40"}})
    assert cursor.advanced("tag:caredesk", "39").tags == {"caredesk": "40"}
    assert cursor.advanced("notifications", "100").to_mapping() == {"notifications": "100", "tags": {"caredesk": "40"}}
    with pytest.raises(Exception, match="clear it"):
        Cursor.from_mapping({"notifications": ["x"]})


def test_length_rules_count_urls_and_remote_mentions_as_mastodon_does() -> None:
    measure = InstanceInfo().measure()
    assert measure("@someone@very.long.example.social hi") == len("@someone hi")
    assert measure("see https://example.com/" + "x" * 80) == len("see ") + 23
    assert InstanceInfo(characters_reserved_per_url=30).measure()("https://example.com/abc") == 30


def test_a_reply_as_mastodon_renders_it_compares_equal_to_what_was_sent() -> None:
    from caredesk.connectors.builtin.mastodon.timelines import plain

    sent = "@carol@example.social Fixed now:\nsee https://status.example.com/incidents/42"
    rendered = (
        '<p><span class="h-card" translate="no"><a href="https://example.social/@carol" class="u-url mention">'
        '@<span>carol</span></a></span> Fixed now:<br />see <a href="https://status.example.com/incidents/42" '
        'target="_blank" rel="nofollow noopener" translate="no"><span class="invisible">https://</span>'
        '<span class="">status.example.com/incidents/42</span><span class="invisible"></span></a></p>'
    )
    assert plain(rendered) == plain(sent)
    assert plain(rendered) != plain(sent + " (edited)")
