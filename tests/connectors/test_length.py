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


def test_xs_own_counting_examples():
    # The examples of X's "Counting characters" page (docs.x.com/fundamentals/counting-characters).
    assert x_weighted_length("\U0001f47e") == 2  # a single emoji
    assert x_weighted_length("\U0001f64b\U0001f3fd") == 2  # with a skin tone
    assert x_weighted_length("\U0001f468\u200d\U0001f3a4") == 2  # combined with a ZWJ
    assert x_weighted_length("\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466") == 2  # a family
    assert x_weighted_length("https://example.com") == 23
    assert x_weighted_length("https://example.com/very/long/path") == 23
    assert x_weighted_length("caf\u00e9") == x_weighted_length("cafe\u0301") == 4  # NFC and NFD alike
    assert x_weighted_length("Hello, world! \U0001f44b") == 16
    rules = x_reply_rules()
    assert rules.problem("\u4f60" * 140) is None and rules.problem("\U0001f47e" * 140) is None  # 140 of each
    assert rules.problem("\U0001f47e" * 141) is not None
