"""How each platform counts a reply's length, and its reply rules, for the providers to state (``reply_rules()``).

The composer and the outbox never switch on platform names: they ask the installation's provider for its
:class:`~caredesk.connectors.base.ReplyRules`. The counting lives here so that providers of the same platform (the
real one and the replay simulator playing it) count alike.

X counts *weighted* characters (twitter-text v3): code points in a few Latin/punctuation ranges weigh 1, all
others (CJK, emoji) weigh 2, every URL counts 23 whatever its length, after NFC normalisation; the limit is 280.
Mastodon counts characters with URLs as 23 and only the username part of ``@user@domain``; the default limit is
500 but instances change it. Bluesky allows 300 graphemes and 3,000 UTF-8 bytes. Reddit comments allow 10,000.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from caredesk.connectors.base import ReplyRules

URL_RE = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"']+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|co|ly|app|dev|social)(?:/[^\s<>\"']*)?")
MASTODON_MENTION_RE = re.compile(r"@(\w+)@[\w.-]+\w")
# twitter-text v3 "light" ranges: these code points weigh 1 unit, everything else 2.
_X_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
# Characters that join or modify the previous one and so never start a new grapheme.
_JOINERS = {0x200D, 0xFE0E, 0xFE0F} | set(range(0x1F3FB, 0x1F400))  # ZWJ, variation selectors, skin tones
X_URL_LENGTH = 23


def _graphemes(text: str) -> list[str]:
    clusters: list[str] = []
    joined = False
    for char in text:
        code = ord(char)
        if clusters and (joined or code in _JOINERS or unicodedata.combining(char)
                         or (0x1F1E6 <= code <= 0x1F1FF and len(clusters[-1]) == 1
                             and 0x1F1E6 <= ord(clusters[-1]) <= 0x1F1FF)):
            clusters[-1] += char
        else:
            clusters.append(char)
        joined = code == 0x200D
    return clusters


def x_weighted_length(text: str) -> int:
    text = unicodedata.normalize("NFC", text)
    total = 0
    last = 0
    for match in URL_RE.finditer(text):
        total += _x_weight(text[last : match.start()]) + X_URL_LENGTH
        last = match.end()
    return total + _x_weight(text[last:])


def _x_weight(segment: str) -> int:
    total = 0
    for cluster in _graphemes(segment):
        if len(cluster) > 1 and any(ord(c) > 0xFFFF or ord(c) in _JOINERS for c in cluster):
            total += 2  # an emoji sequence counts as one emoji
            continue
        for char in cluster:
            code = ord(char)
            total += 1 if any(lo <= code <= hi for lo, hi in _X_LIGHT_RANGES) else 2
    return total


def mastodon_length(text: str) -> int:
    text = MASTODON_MENTION_RE.sub(lambda m: "@" + m.group(1), text)
    text = URL_RE.sub("x" * X_URL_LENGTH, text)
    return len(text)


def grapheme_count(text: str) -> int:
    return len(_graphemes(text))


def x_reply_rules() -> ReplyRules:
    """X: 280 weighted characters; replies through the API only where the author summoned the account."""
    return ReplyRules(max_length=280, unit="weighted characters", measure=x_weighted_length, answers_unsummoned=False,
                      direct_messages=True)


def mastodon_reply_rules(max_characters: int | None = None) -> ReplyRules:
    """Mastodon: the instance's limit (500 by default), URLs 23, ``@user@domain`` counts ``@user``; DMs are
    direct-visibility statuses."""
    return ReplyRules(max_length=max_characters or 500, measure=mastodon_length, direct_messages=True)


def bluesky_reply_rules(direct_messages: bool = False) -> ReplyRules:
    """Bluesky: 300 graphemes and 3,000 UTF-8 bytes; DMs only where the app password has chat access."""
    return ReplyRules(max_length=300, unit="graphemes", measure=grapheme_count, max_bytes=3000,
                      direct_messages=direct_messages)


def reddit_reply_rules() -> ReplyRules:
    """Reddit: comments of up to 10,000 characters of markdown."""
    return ReplyRules(max_length=10000)


RULES_BY_PLATFORM: dict[str, Callable[[], ReplyRules]] = {
    "x": x_reply_rules,
    "mastodon": mastodon_reply_rules,
    "bluesky": bluesky_reply_rules,
    "reddit": reddit_reply_rules,
}
