from caredesk.connectors.length import (
    bluesky_reply_rules,
    mastodon_length,
    mastodon_reply_rules,
    reddit_reply_rules,
    x_reply_rules,
    x_weighted_length,
)


def test_plain_ascii_counts_one_each():
    assert x_weighted_length("Can I help?") == 11


def test_urls_count_23_whatever_their_length():
    text = "see https://example.com/a/very/long/path/that/goes/on/and/on?with=query"
    assert x_weighted_length(text) == len("see ") + 23


def test_cjk_and_emoji_weigh_two():
    assert x_weighted_length("你好") == 4
    assert x_weighted_length("👍") == 2
    assert x_weighted_length("👩‍👩‍👧") == 2  # one emoji sequence


def test_x_limit_is_280_weighted():
    rules = x_reply_rules()
    assert rules.problem("a" * 280) is None
    assert rules.problem("a" * 281) == "too long: 281 weighted characters, the limit is 280"
    assert rules.problem("你" * 141) is not None


def test_mastodon_counts_username_only_and_urls_23():
    assert mastodon_length("@casey@example.social hi") == len("@casey hi")
    assert mastodon_reply_rules().problem("a" * 500) is None and mastodon_reply_rules().problem("a" * 501)
    assert mastodon_reply_rules(1000).problem("a" * 600) is None


def test_bluesky_counts_graphemes():
    rules = bluesky_reply_rules()
    assert rules.problem("é" * 300) is None
    assert rules.problem("👍🏽" * 300) is None  # 300 graphemes in 2,400 bytes
    assert rules.problem("a" * 301) == "too long: 301 graphemes, the limit is 300"
    family = "👩\u200d👩\u200d👧"  # one grapheme, 18 bytes
    assert rules.problem(family * 200) == "too long: 3600 bytes, the limit is 3000"


def test_rules_say_what_may_be_answered():
    assert x_reply_rules().problem("Can I help?", summoned=False) is not None  # a keyword match on X
    assert mastodon_reply_rules().problem("Can I help?", summoned=False) is None
    assert bluesky_reply_rules().problem("hi", direct=True) == "this platform offers no private replies here"
    assert bluesky_reply_rules(direct_messages=True).problem("hi", direct=True) is None
    assert reddit_reply_rules().problem("   ") == "a reply needs some text"
    assert reddit_reply_rules().problem("a" * 10000) is None
