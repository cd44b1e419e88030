"""Regex detection and masking of personal data in post text.

Detection is deliberately greedy (better to mask an order number than to log a card number): emails, card numbers
that pass the Luhn check, account numbers (by a nearby "account"/"acct"/"IBAN" word or as a bare run of 8+ digits),
phone numbers and street addresses. The batch path runs each pattern once over the whole joined batch.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from caredesk.triage.text import join_posts
from caredesk.triage.types import PIIMatch

ACCOUNT = "account_number"
PHONE = "phone"
EMAIL = "email"
CARD = "card"
ADDRESS = "address"

# Speed note: every pattern starts with a literal or a character class (lookbehinds come after the first
# character), because Python's regex engine can then skip ahead to candidate positions; a leading \b or lookbehind
# makes it try every position and was ten times slower. Patterns never cross the NUL between posts of a batch.

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
_IBAN_RE = re.compile(r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")
_PHONE_RE = re.compile(
    r"\d(?<![\w+]\d)\d{1,5}(?:[ .-]\d{2,6}){1,4}(?!\w)"  # 0161 496 0000, 555.123.4567
    r"|[+(](?<![\w+][+(])(?:(?<=\+)\d{1,3}[ .-]?(?:\(\d{1,5}\)[ .-]?)?|(?<=\()\d{1,5}\)[ .-]?)"
    r"\d{2,6}(?:[ .-]\d{2,6}){0,4}(?!\w)"  # +44 7700 900123, (555) 123-4567
)
_DIGITS_RE = re.compile(r"\d(?<![\w+]\d)\d{7,}(?!\w)")
_PHONE_CONTEXT_RE = re.compile(
    r"(?:call|phone|tel|telephone|mobile|cell|whatsapp|text|sms|ring|reach|number)\W*(?:me\W*)?(?:on|at|is)?\W*$",
    re.IGNORECASE,
)
_STREET = (
    r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|close|"
    r"crescent|highway|hwy|square|sq|parkway|pkwy|gardens|grove)"
)
_ADDRESS_RE = re.compile(
    rf"\d(?<!\w\d)\d{{0,4}}[A-Za-z]?,?\s+(?:[A-Z][\w'-]*\s+){{1,4}}{_STREET}\b\.?"  # 42 Baker Street
    r"|\d(?<!\w\d)\d{0,3},?\s+(?i:rue|avenue|boulevard|chemin|allée)\s+(?:[\w'-]+\s+){0,3}[A-Z][\w'-]+"
)
_ADDRESS_NAME_FIRST_RE = re.compile(
    r"[A-ZÄÖÜ][a-zäöüß]+(?:straße|strasse|weg|allee|platz|gasse)\s+\d{1,4}[a-z]?\b"  # Hauptstraße 12
    r"|[CcAaRrVvPp](?<!\w[CcAaRrVvPp])(?:alle|venida|ua|ia|iale|iazza|laza)\s+(?:[\w'-]+\s+){0,3}[A-Z][\w'-]*,?"
    r"\s+\d{1,4}\b"  # Calle Mayor 5, Via Roma 12
)

# Which kind wins when two matches overlap: the more specific and the more harmful first.
_PRIORITY = {EMAIL: 0, CARD: 1, ACCOUNT: 2, PHONE: 3, ADDRESS: 4}
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


def _candidates(text: str, lower: str) -> list[tuple[int, int, int, str]]:
    """(priority, start, end, kind) for every pattern hit, overlaps included.

    ``lower`` is ``text`` lowercased with the same length (so offsets agree).
    """
    found: list[tuple[int, int, int, str]] = []
    if "@" in text:
        for m in _EMAIL_DOMAIN_RE.finditer(text):
            found.append((_PRIORITY[EMAIL], _email_start(text, m.start()), m.end(), EMAIL))
    for m in _CARD_RE.finditer(text):
        if luhn_valid(_digits(m.group())):
            found.append((_PRIORITY[CARD], m.start(), m.end(), CARD))
    for m in _ACCOUNT_RE.finditer(lower):
        if m.start() == 0 or not lower[m.start() - 1].isalnum():
            found.append((_PRIORITY[ACCOUNT], m.start("number"), m.end("number"), ACCOUNT))
    for m in _IBAN_RE.finditer(text):
        found.append((_PRIORITY[ACCOUNT], m.start(), m.end(), ACCOUNT))
    for m in _PHONE_RE.finditer(text):
        n_digits = len(_digits(m.group()))
        if 9 <= n_digits <= 15 or (n_digits >= 7 and m.group()[0] in "+("):
            found.append((_PRIORITY[PHONE], m.start(), m.end(), PHONE))
    for m in _DIGITS_RE.finditer(text):
        # A bare digit run is a phone number when the words just before say so, else an account number.
        before = text[max(0, m.start() - 24) : m.start()]
        kind = PHONE if _PHONE_CONTEXT_RE.search(before) else ACCOUNT
        found.append((_PRIORITY[kind], m.start(), m.end(), kind))
    for pattern in (_ADDRESS_RE, _ADDRESS_NAME_FIRST_RE):
        for m in pattern.finditer(text):
            found.append((_PRIORITY[ADDRESS], m.start(), m.end(), ADDRESS))
    return found


def _resolve(found: list[tuple[int, int, int, str]]) -> tuple[PIIMatch, ...]:
    """The best non-overlapping matches, in text order."""
    kept: list[tuple[int, int, str]] = []
    for _prio, start, end, kind in sorted(found, key=lambda c: (c[0], c[1], -c[2])):
        if all(end <= s or start >= e for s, e, _ in kept):
            kept.append((start, end, kind))
    kept.sort()
    return tuple(PIIMatch(kind, s, e) for s, e, kind in kept)


def detect_pii(text: str) -> tuple[PIIMatch, ...]:
    """Personal data spans in ``text``, non-overlapping and in order."""
    return detect_pii_joined(*join_posts([text]), [len(text)])[0]


def detect_pii_joined(joined: str, starts: npt.NDArray[np.int64], lengths: Sequence[int]) -> list[tuple[PIIMatch, ...]]:
    """Per post PII of a batch joined by :func:`caredesk.triage.text.join_posts`.

    Every kind but e-mail needs a digit, so only posts with a digit or an "@" are scanned; they are joined again
    so each pattern still runs once, in C, over all of them. Offsets are shifted back to each post's own text.
    """
    n = len(starts)
    out: list[tuple[PIIMatch, ...]] = [()] * n
    points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    interesting = np.flatnonzero(((points - 48) < 10) | (points == 64))  # unsigned: 0-9, or "@"
    if not len(interesting):
        return out
    posts = np.unique(np.searchsorted(starts, interesting, side="right") - 1).tolist()
    start_list = starts.tolist()
    texts = [joined[start_list[p] : start_list[p] + lengths[p]] for p in posts]
    sub_joined, sub_starts = join_posts(texts)
    lower = sub_joined.lower()
    if len(lower) != len(sub_joined):  # a few characters grow when lowercased; keep offsets exact
        lower = "".join(ch if len(ch.lower()) != 1 else ch.lower() for ch in sub_joined)
    found = _candidates(sub_joined, lower)
    if not found:
        return out
    sub_list = sub_starts.tolist()
    by_post: dict[int, list[tuple[int, int, int, str]]] = {}
    for prio, s, e, kind in found:
        k = bisect_right(sub_list, s) - 1
        offset = sub_list[k]
        by_post.setdefault(posts[k], []).append((prio, s - offset, e - offset, kind))
    for post, cands in by_post.items():
        out[post] = _resolve(cands)
    return out


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
