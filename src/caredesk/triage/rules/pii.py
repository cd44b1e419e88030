"""Regex detection and masking of personal data in post text.

Detection is deliberately greedy (better to mask an order number than to log a card number): emails, card numbers
that pass the Luhn check, account numbers (by a nearby "account"/"acct"/"IBAN" word or as a bare run of 8+ digits),
phone numbers and street addresses. The batch path runs each pattern once, in C, over the posts of the batch that
can hold a match, joined.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from caredesk.triage.text.tokens import SEP, join_posts
from caredesk.triage.types import PIIMatch, make_pii_match

ACCOUNT = "account_number"
PHONE = "phone"
EMAIL = "email"
CARD = "card"
ADDRESS = "address"

# Speed note: every pattern starts with a literal or a character class (lookbehinds come after the first
# character), because Python's regex engine can then skip ahead to candidate positions; a leading \b or lookbehind
# makes it try every position and was ten times slower. A top-level alternation of classes counts as neither, so
# such patterns start with the union of their branches' first characters and each branch checks its own with a
# lookbehind. Patterns never cross the NUL between posts of a batch.

# Only the domain half is matched (fast, anchored on "@"); the local part is found by walking back in Python.
_EMAIL_DOMAIN_RE = re.compile(r"@(?<=[\w.%+-]@)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_EMAIL_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
# 13-19 digits, optionally grouped by single spaces or dashes; the Luhn check decides.
_CARD_RE = re.compile(r"\d(?<![\d+-]\d)(?:[ -]?\d){12,18}(?!\d)")
# Run on lowercased text: a case-insensitive alternation cannot use the fast skip-ahead.
_ACCOUNT_RE = re.compile(
    r"(?:account|acct|acc|a/c|customer|member(?:ship)?|policy|reference|ref|iban|sort\s+code)"
    r"(?:\s*(?:number|no\.?|num|nr|id|#))?\s*[:#]?\s*"
    r"(?P<number>\d(?:[ -]?\d){3,30})"
)
_SCANNED_RE = re.compile(r"[0-9@]")  # only posts with one of these are scanned
_FEW_POSTS = 8
# How every keyword of _ACCOUNT_RE starts (no one of these is the start of another, so at most one is found at a
# position).
_ACCOUNT_STARTS = ("acc", "a/c", "customer", "member", "policy", "ref", "iban", "sort")
_IBAN_RE = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")
_PHONE_RE = re.compile(
    r"[\d+(]"
    r"(?:(?<=\d)(?<![\w+]\d)\d{1,5}(?:[ .-]\d{2,6}){1,4}(?!\w)"  # 0161 496 0000, 555.123.4567
    r"|(?<=[+(])(?<![\w+][+(])(?:(?<=\+)\d{1,3}[ .-]?(?:\(\d{1,5}\)[ .-]?)?|(?<=\()\d{1,5}\)[ .-]?)"
    r"\d{2,6}(?:[ .-]\d{2,6}){0,4}(?!\w))"  # +44 7700 900123, (555) 123-4567
)
# A phone number has at least this many digits (fewer are dates, times, prices).
_PHONE_MIN_DIGITS = 7
_PHONE_SEPARATORS = str.maketrans("", "", " .-()+")
_PHONE_GROUP_SEPARATORS = np.array([ord(c) for c in " .-"], dtype=np.uint32)
_PHONE_PREFIXES = np.array([ord(c) for c in "+("], dtype=np.uint32)
_DIGITS_RE = re.compile(r"\d(?<![\w+]\d)\d{7,}(?!\w)")
_DIGITS_MIN_RUN = 8
# "call me on", "my number is" just before a digit run. Matched backwards from the digits, on the reversed text:
# anchored at its start, the regex tries one position instead of every one.
_PHONE_CONTEXT_WORDS = (
    "call", "phone", "tel", "telephone", "mobile", "cell", "whatsapp", "text", "sms", "ring", "reach", "number"
)
_PHONE_CONTEXT_REVERSED_RE = re.compile(
    rf"\W*(?:no|ta|si)?(?:\W*em)?\W*(?:{'|'.join(w[::-1] for w in _PHONE_CONTEXT_WORDS)})", re.IGNORECASE
)
_STREET = (
    r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|close|"
    r"crescent|highway|hwy|square|sq|parkway|pkwy|gardens|grove)"
)
_ADDRESS_RE = re.compile(
    rf"\d(?<!\w\d)\d{{0,4}}[A-Za-z]?,?\s+(?:[A-Z][\w'-]*\s+){{1,4}}{_STREET}\b\.?"  # 42 Baker Street
    r"|\d(?<!\w\d)\d{0,3},?\s+(?i:rue|avenue|boulevard|chemin|allée)\s+(?:[\w'-]+\s+){0,3}[A-Z][\w'-]+"
)
# Every match holds one of these: a street word of either branch ("allee", "iale" and "iazza" hold "alle" or "ia").
_NAME_FIRST_WORDS = ("straße", "strasse", "weg", "platz", "gasse", "alle", "venida", "ua", "ia", "laza")
_ADDRESS_NAME_FIRST_RE = re.compile(
    r"[A-ZÄÖÜcarvp]"
    r"(?:(?<=[A-ZÄÖÜ])[a-zäöüß]+(?:straße|strasse|weg|allee|platz|gasse)\s+\d{1,4}[a-z]?\b"  # Hauptstraße 12
    r"|(?<=[CcAaRrVvPp])(?<!\w[CcAaRrVvPp])(?:alle|venida|ua|ia|iale|iazza|laza)\s+(?:[\w'-]+\s+){0,3}"
    r"[A-Z][\w'-]*,?\s+\d{1,4}\b)"  # Calle Mayor 5, Via Roma 12
)

# Which kind wins when two matches overlap: the more specific and the more harmful first.
_KINDS = (EMAIL, CARD, ACCOUNT, PHONE, ADDRESS)
_PRIORITY = {kind: i for i, kind in enumerate(_KINDS)}
_MASK_NAME = {ACCOUNT: "account number", PHONE: "phone", EMAIL: "email", CARD: "card", ADDRESS: "address"}
_KEEPS_DIGITS = frozenset({ACCOUNT, PHONE, CARD})


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _email_start(text: str, at: int) -> int:
    start = at
    while start > 0 and text[start - 1] in _EMAIL_LOCAL:
        start -= 1
    return start


class _Subset:
    """Some posts of a batch joined again, so that a pattern runs once, in C, over just the posts it can match.

    Scans record their matches in ``spans`` as (start, end, priority of the kind), offsets in ``text``.
    """

    def __init__(self, texts: list[str], lengths: npt.NDArray[np.int64], posts: npt.NDArray[np.int64]) -> None:
        self.posts = posts
        self.text = SEP + SEP.join([texts[p] for p in posts.tolist()])  # the texts hold no NUL (see join_posts)
        self.starts = np.cumsum(lengths[posts] + 1) - lengths[posts]
        self.ends = self.starts + lengths[posts]
        self.spans: list[tuple[int, int, int]] = []

    def narrowed(self, positions: list[int]) -> tuple[str, list[int], list[int]]:
        """The posts that hold ``positions`` joined again: that text, where each post starts in it, and per post
        what to add to an offset in that text to get the same place in ``text``."""
        posts = np.unique(np.searchsorted(self.starts, positions, side="right") - 1)
        starts, ends = self.starts[posts], self.ends[posts]
        text = SEP + SEP.join([self.text[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)])
        text_starts = np.cumsum(ends - starts + 1) - (ends - starts)
        return text, text_starts.tolist(), (starts - text_starts).tolist()

    def located(self) -> npt.NDArray[np.int64]:
        """The spans as rows (post in the batch, priority, start, end), offsets within the post's own text."""
        spans = np.array(self.spans, dtype=np.int64).reshape(-1, 3)
        k = np.searchsorted(self.starts, spans[:, 0], side="right") - 1
        offset = self.starts[k]
        return np.column_stack([self.posts[k], spans[:, 2], spans[:, 0] - offset, spans[:, 1] - offset])


def _lowered(text: str) -> str:
    """``text`` lowercased with the same length, so offsets agree (a few characters grow when lowercased)."""
    lower = text.lower()
    if len(lower) != len(text):
        lower = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in text)
    return lower


_ASCII_SPACE = np.array([chr(c).isspace() for c in range(128)] + [False])
_ASCII_LETTER = np.array([chr(c).isascii() and chr(c).isalpha() for c in range(128)] + [False])
_COMMA = ord(",")
_STREET_START = np.array([chr(c).isupper() or chr(c).isspace() or chr(c) in "rabc" for c in range(128)] + [False])


def _is_space(points: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    """Which code points the patterns' \\s matches (a table for ASCII, str.isspace for the few others)."""
    out: npt.NDArray[np.bool_] = _ASCII_SPACE[np.minimum(points, 128)]
    high = np.flatnonzero(points > 127)
    if len(high):
        out[high] = [chr(c).isspace() for c in points[high].tolist()]
    return out


def detect_pii(text: str) -> tuple[PIIMatch, ...]:
    """Personal data spans in ``text``, non-overlapping and in order."""
    return detect_pii_joined(*join_posts([text]), [len(text)])[0]


def detect_pii_joined(joined: str, starts: npt.NDArray[np.int64], lengths: Sequence[int]) -> list[tuple[PIIMatch, ...]]:
    """Per post PII of a batch joined by :func:`caredesk.triage.text.tokens.join_posts`.

    Only posts with a digit 0-9 or an "@" are scanned. Each pattern then runs once over the posts that can hold a
    match at all, judged by the characters around their digits (a card needs 13 digits, a phone number 7, an
    address a digit next to a space, and so on), so most patterns scan a small part of the batch. Offsets are
    shifted back to each post's own text.
    """
    n = len(starts)
    out: list[tuple[PIIMatch, ...]] = [()] * n
    if not n:
        return out
    texts = joined.split(SEP)[1:]  # the batch's texts (a NUL inside a post is a space in ``joined``)
    length = np.asarray(lengths, dtype=np.int64)
    if n <= _FEW_POSTS:
        # Choosing posts per pattern takes some forty numpy calls, more than scanning a few posts for every pattern.
        to_scan = np.array([i for i, text in enumerate(texts) if _SCANNED_RE.search(text)], dtype=np.int64)
        if len(to_scan):
            group = _Subset(texts, length, to_scan)
            for scan in _SCANS:
                scan(group)
            if group.spans:
                _resolve(group.located(), out)
        return out
    points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    last = len(points) - 1
    digits_at = np.flatnonzero((points - 48) < 10)  # unsigned: wraps below "0"
    emails_at = np.flatnonzero(points == 64)
    if not len(digits_at) and not len(emails_at):
        return out

    def posts_of(positions: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        hit = np.zeros(n, dtype=bool)
        hit[np.searchsorted(starts, positions, side="right") - 1] = True
        return hit

    scanned = posts_of(digits_at) | posts_of(emails_at)
    # The patterns' \d is any Unicode decimal digit, not only 0-9 (but a post with only those is not scanned).
    high = np.flatnonzero(points > 127)
    if len(high):
        values = np.unique(points[high])
        decimal = np.array([chr(v).isdecimal() for v in values.tolist()], dtype=bool)
        other_digits = high[decimal[np.searchsorted(values, points[high])]]
        if len(other_digits):
            digits_at = np.sort(np.concatenate([digits_at, other_digits]))
    digit_count = np.bincount(np.searchsorted(starts, digits_at, side="right") - 1, minlength=n)

    def after(k: int) -> npt.NDArray[np.uint32]:
        return points[np.minimum(digits_at + k, last)]  # clipped: may pass a post it should not, never the reverse

    # Each condition holds for every post that a pattern can match in (the regex still decides).
    span = _DIGITS_MIN_RUN - 1
    runs = digits_at[:-span][digits_at[span:] - digits_at[:-span] == span]  # that many digits in a row
    gaps = digits_at[1:] - digits_at[:-1]
    pairs = digits_at[:-1][gaps == 1]
    # A phone number has digit groups split by one of " .-", or starts with "+" or "(".
    split = digits_at[:-1][gaps == 2]
    split = split[np.isin(points[split + 1], _PHONE_GROUP_SEPARATORS)]
    prefixed = digits_at[np.isin(points[digits_at - 1], _PHONE_PREFIXES)]
    upper = (points[np.maximum(pairs - 1, 0)] - 65 < 26) & (points[np.maximum(pairs - 2, 0)] - 65 < 26)
    # An address number is followed by an optional letter, an optional comma, white space and a word.
    c1, c2, c3, c4 = after(1), after(2), after(3), after(4)
    s1, s2, s3 = _is_space(c1), _is_space(c2), _is_space(c3)
    l1 = _ASCII_LETTER[np.minimum(c1, 128)]

    def next_word(c: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
        """After the white space: a capital (42 Baker Street), r/a/b/c (12 rue de ...), or more white space."""
        return (c > 127) | _STREET_START[np.minimum(c, 128)]

    number_first = (
        (s1 & next_word(c2))
        | ((l1 | (c1 == _COMMA)) & s2 & next_word(c3))
        | (l1 & (c2 == _COMMA) & s3 & next_word(c4))
    )
    name_first = _is_space(points[digits_at - 1])  # "Calle Mayor 5": a space, then digits

    found: list[npt.NDArray[np.int64]] = []
    for scan, condition in (
        (_scan_email, posts_of(emails_at)),
        (_scan_card, digit_count >= 13),
        (_scan_iban, posts_of(pairs[upper])),
        (_scan_account, digit_count >= 4),
        (_scan_phone, (digit_count >= _PHONE_MIN_DIGITS) & (posts_of(split) | posts_of(prefixed))),
        (_scan_digits, posts_of(runs)),
        (_scan_address, posts_of(digits_at[number_first])),
        (_scan_address_name_first, posts_of(digits_at[name_first])),
    ):
        posts = np.flatnonzero(scanned & condition)
        if len(posts):
            group = _Subset(texts, length, posts)
            scan(group)
            if group.spans:
                found.append(group.located())
    if found:
        _resolve(np.concatenate(found), out)
    return out


def _scan_email(group: _Subset) -> None:
    text = group.text
    for m in _EMAIL_DOMAIN_RE.finditer(text):
        group.spans.append((_email_start(text, m.start()), m.end(), _PRIORITY[EMAIL]))


def _scan_card(group: _Subset) -> None:
    for m in _CARD_RE.finditer(group.text):
        if luhn_valid(_digits(m.group())):
            group.spans.append((*m.span(), _PRIORITY[CARD]))


def _scan_iban(group: _Subset) -> None:
    group.spans.extend((*m.span(), _PRIORITY[ACCOUNT]) for m in _IBAN_RE.finditer(group.text))


def _scan_account(group: _Subset) -> None:
    lower = _lowered(group.text)
    # Every match starts with a keyword, and every keyword with one of _ACCOUNT_STARTS: str.find skips to those
    # much faster than the regex, whose first character can be any of seven common letters. Trying the regex only
    # there, left to right and never inside the previous match, finds what finditer would.
    end = 0
    for at in sorted(_find_all(lower, _ACCOUNT_STARTS)):
        if at < end:
            continue
        m = _ACCOUNT_RE.match(lower, at)
        if m is None:
            continue
        end = m.end()
        if not lower[at - 1].isalnum():  # a NUL opens each post, so there is a character before
            group.spans.append((*m.span("number"), _PRIORITY[ACCOUNT]))


def _scan_phone(group: _Subset) -> None:
    for m in _PHONE_RE.finditer(group.text):
        number = m.group()
        n_digits = len(number.translate(_PHONE_SEPARATORS))  # the rest of a match are digits
        if 9 <= n_digits <= 15 or (n_digits >= _PHONE_MIN_DIGITS and number[0] in "+("):
            group.spans.append((*m.span(), _PRIORITY[PHONE]))


def _scan_digits(group: _Subset) -> None:
    text = group.text
    post_starts = group.starts.tolist()
    for m in _DIGITS_RE.finditer(text):
        # A bare digit run is a phone number when the words just before it (in the same post) say so, else an
        # account number.
        start, end = m.span()
        before = text[max(post_starts[bisect_right(post_starts, start) - 1], start - 24) : start]
        phone = _PHONE_CONTEXT_REVERSED_RE.match(before[::-1])
        group.spans.append((start, end, _PRIORITY[PHONE if phone else ACCOUNT]))


def _scan_address(group: _Subset) -> None:
    group.spans.extend((*m.span(), _PRIORITY[ADDRESS]) for m in _ADDRESS_RE.finditer(group.text))


def _scan_address_name_first(group: _Subset) -> None:
    # The regex can start at any capital and at five common lower-case letters; it only matches a post with one of
    # its street words, which str.find finds much faster.
    found = _find_all(group.text, _NAME_FIRST_WORDS)
    if not found:
        return
    text, starts, shift = group.narrowed(found)
    for m in _ADDRESS_NAME_FIRST_RE.finditer(text):
        k = bisect_right(starts, m.start()) - 1
        group.spans.append((m.start() + shift[k], m.end() + shift[k], _PRIORITY[ADDRESS]))


def _find_all(text: str, words: Sequence[str]) -> list[int]:
    """Every position where one of ``words`` starts in ``text``."""
    found: list[int] = []
    for word in words:
        at = text.find(word)
        while at >= 0:
            found.append(at)
            at = text.find(word, at + 1)
    return found


_SCANS = (
    _scan_email, _scan_card, _scan_iban, _scan_account, _scan_phone, _scan_digits, _scan_address,
    _scan_address_name_first,
)


def _resolve(found: npt.NDArray[np.int64], out: list[tuple[PIIMatch, ...]]) -> None:
    """Per post, the best non-overlapping matches in text order: by priority of the kind, then the earliest, then
    the longest. ``found`` has rows (post, priority, start, end)."""
    rows = found[np.lexsort((-found[:, 3], found[:, 2], found[:, 1], found[:, 0]))]
    # Two patterns often find the same span ("acct 12345678"); a repeat would only lose to its twin.
    rows = rows[np.append(True, (rows[1:] != rows[:-1]).any(axis=1))]
    post = rows[:, 0]
    first = np.ones(len(post), dtype=bool)
    first[1:] = post[1:] != post[:-1]
    alone = first & np.append(first[1:], True)  # most posts with personal data have one candidate
    for p, prio, s, e in rows[alone].tolist():
        out[p] = (make_pii_match(_KINDS[prio], s, e),)
    current = -1
    kept: list[tuple[int, int, int]] = []
    for p, prio, s, e in rows[~alone].tolist():
        if p != current:
            if kept:
                out[current] = _matches(kept)
            current, kept = p, [(s, e, prio)]
        elif all(e <= ks or s >= ke for ks, ke, _ in kept):
            kept.append((s, e, prio))
    if kept:
        out[current] = _matches(kept)


def _matches(kept: list[tuple[int, int, int]]) -> tuple[PIIMatch, ...]:
    if len(kept) == 1:
        s, e, prio = kept[0]
        return (make_pii_match(_KINDS[prio], s, e),)
    kept.sort()  # no two kept spans overlap, so this is by start
    return tuple(make_pii_match(_KINDS[prio], s, e) for s, e, prio in kept)


def mask_pii(text: str, matches: Iterable[PIIMatch] | None = None) -> str:
    """``text`` with each personal-data span replaced, e.g. ``[card ••42]``, ``[email]``.

    Numbers keep their last two digits so an agent can still tell two accounts apart. ``matches`` defaults to
    :func:`detect_pii` of ``text``; overlapping matches are masked once, by the first.
    """
    spans = sorted(detect_pii(text) if matches is None else matches, key=lambda m: (m.start, -m.end))
    parts: list[str] = []
    pos = 0
    for m in spans:
        if m.start < pos or m.end > len(text):
            continue
        parts.append(text[pos : m.start])
        name = _MASK_NAME.get(m.kind, m.kind)
        tail = _digits(text[m.start : m.end])[-2:] if m.kind in _KEEPS_DIGITS else ""
        parts.append(f"[{name} ••{tail}]" if tail else f"[{name}]")
        pos = m.end
    parts.append(text[pos:])
    return "".join(parts)
