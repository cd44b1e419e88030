from caredesk.outbox.length import check_length, mastodon_length, x_weighted_length


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
    assert check_length("x", "a" * 280).ok
    assert not check_length("x", "a" * 281).ok
    assert not check_length("x", "你" * 141).ok


def test_mastodon_counts_username_only_and_urls_23():
    assert mastodon_length("@casey@example.social hi") == len("@casey hi")
    assert check_length("mastodon", "a" * 500).ok and not check_length("mastodon", "a" * 501).ok
    assert check_length("mastodon", "a" * 600, limit=1000).ok


def test_bluesky_counts_graphemes():
    assert check_length("bluesky", "é" * 300).ok
    assert check_length("bluesky", "👍🏽" * 300).ok
    assert not check_length("bluesky", "a" * 301).ok
