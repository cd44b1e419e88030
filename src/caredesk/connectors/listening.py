"""Listening rules, and keyword listening: which of a brand's names and keywords a post mentions.

A brand listens for its names, products and campaign words (``keywords``) and hashtags, drops what matches an
exclusion ("orange juice" for a telecom called Orange), and may keep only some languages: :class:`ListeningRules`,
part of an installation's config, so editing them needs no restart. A post that matched only a rule is *not
summoned*: its author did not address the brand, and some platforms' rules forbid answering it through their API.

Shared by the providers that read public posts nobody addressed to the brand (feeds, firehoses), so it is pure
and fast: every keyword goes into one compiled regular expression, a trie of alternatives, run once over the
case-folded text. Matching is case-insensitive (Unicode case folding, so "STRASSE" finds "Straße"), on NFC text,
and on whole words and phrases: "Acme" does not match inside "Acmeville". Scripts written without spaces
between words (Chinese, Japanese, Thai, ...) have no word edges to look for, so a keyword there matches
anywhere, and a Latin-script keyword next to such text still counts as a whole word ("Vodafoneの回線").
Whitespace inside a phrase matches any run of whitespace.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Scripts that do not separate words with spaces (and Hangul, whose particles attach to the noun): a word
# character from these is not a word edge to respect.
_UNSPACED = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\uff66-\uff9f"  # half-width Katakana
    "\U00020000-\U0003ffff"  # CJK extensions B and later
)
_UNSPACED_CHAR = re.compile(f"[{_UNSPACED}]")
# A word character that makes a word edge: a letter, digit or underscore of a script written with spaces.
_EDGE = f"[^\\W{_UNSPACED}]"
_NOT_AFTER_WORD = f"(?<!{_EDGE}[\\s\\S])"  # written after the first character
_NOT_BEFORE_WORD = f"(?!{_EDGE})"
_WORD_CHAR = re.compile(r"\w")
_SPACE_RUN = r"\s+"
_END = ""  # trie key that marks the end of a keyword

MAX_KEYWORDS = 2000
MAX_KEYWORD_LENGTH = 200


def fold(text: str) -> str:
    """The form both keywords and texts are compared in: NFC, case-folded."""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text.casefold()


def _key(text: str) -> str:
    return " ".join(fold(text).split())


def _needs_edge(char: str) -> bool:
    return bool(_WORD_CHAR.match(char)) and not _UNSPACED_CHAR.match(char)


def _tokens(keyword: str) -> list[str]:
    """The regex pieces of a folded keyword: one per character, one per run of whitespace."""
    return [_SPACE_RUN if part == " " else re.escape(part) for part in keyword]


def _trie_pattern(node: dict[str, Any]) -> str:
    """A regex matching every path of ``node``; longer alternatives first, so the longest keyword wins."""
    alternatives = [token + _trie_pattern(child) for token, child in sorted(node.items()) if token != _END]
    if _END in node:
        alternatives.append("")  # the keyword may end here
    if len(alternatives) == 1:
        return alternatives[0]
    return "(?:" + "|".join(alternatives) + ")"


def _compile(keywords: Iterable[str]) -> tuple[re.Pattern[str] | None, dict[str, str]]:
    """One pattern for all ``keywords`` and the map from a match's key back to the keyword as configured."""
    originals: dict[str, str] = {}
    for keyword in keywords:
        key = _key(keyword)
        if key:
            originals.setdefault(key, keyword.strip())
    if not originals:
        return None, originals
    # One branch per first character, so that every alternative of the pattern starts with a literal: the regex
    # engine then skips straight to the next place one of those characters occurs instead of trying every
    # position. The word-start guard comes after that first character (it depends on it) and looks one
    # character further back. Under it, two tries of the rest: keywords that end in a word character need the
    # word-end guard, once after their whole trie (backtracking into it still finds a shorter keyword where a
    # longer one fails the guard) rather than once per keyword, as each guard is a large class to compile.
    # The unguarded trie goes first: its keywords end in punctuation ("c++", "acme!") and are usually the
    # longer spelling of a guarded one.
    by_first: dict[str, dict[bool, dict[str, Any]]] = {}
    for key in originals:
        first, *others = _tokens(key)
        node = by_first.setdefault(first, {False: {}, True: {}})[_needs_edge(key[-1])]
        for token in others:
            node = node.setdefault(token, {})
        node[_END] = ""
    branches = []
    for piece, tries in sorted(by_first.items()):
        first_char = " " if piece == _SPACE_RUN else re.sub(r"\\(.)", r"\1", piece)
        guard = _NOT_AFTER_WORD if _needs_edge(first_char) else ""
        rests = []
        if tries[False]:
            rests.append(_trie_pattern(tries[False]))
        if tries[True]:
            rests.append("(?:" + _trie_pattern(tries[True]) + ")" + _NOT_BEFORE_WORD)
        rest = rests[0] if len(rests) == 1 else "(?:" + "|".join(rests) + ")"
        branches.append(piece + guard + rest)
    return re.compile("|".join(branches)), originals


class KeywordMatcher:
    """Finds a brand's keywords in texts; a text that matches any ``exclude`` phrase matches nothing.

    Build it once per configuration and call :meth:`match` per post.
    """

    def __init__(self, keywords: Iterable[str], exclude: Iterable[str] = ()) -> None:
        keywords = list(keywords)
        exclude = list(exclude)
        for name, values in (("keywords", keywords), ("exclude", exclude)):
            if len(values) > MAX_KEYWORDS:
                raise ValueError(f"at most {MAX_KEYWORDS} {name}, not {len(values)}")
            for value in values:
                if len(value) > MAX_KEYWORD_LENGTH:
                    raise ValueError(f"{name}: {value[:40]!r}… is longer than {MAX_KEYWORD_LENGTH} characters")
        self._pattern, self._originals = _compile(keywords)
        self._exclude, _ = _compile(exclude)

    def match(self, text: str) -> tuple[str, ...]:
        """The keywords ``text`` mentions, as configured, in the order they first appear; empty when none does
        or when an exclusion matches."""
        if self._pattern is None or not text:
            return ()
        folded = fold(text)
        found = self._pattern.findall(folded)
        if not found:
            return ()
        if self._exclude is not None and self._exclude.search(folded):
            return ()
        result: dict[str, None] = {}
        for hit in found:
            result.setdefault(self._originals[" ".join(hit.split())], None)
        return tuple(result)

    def excluded(self, text: str) -> bool:
        """Whether ``text`` matches an exclusion."""
        return self._exclude is not None and bool(self._exclude.search(fold(text)))


MAX_RULES = 500
MAX_RULE_LENGTH = MAX_KEYWORD_LENGTH


class ListeningRules(BaseModel):
    """A brand's listening rules on one installation (part of its config, so editing them needs no restart)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keywords: tuple[str, ...] = Field(default=(), max_length=MAX_RULES)
    hashtags: tuple[str, ...] = Field(default=(), max_length=MAX_RULES)
    exclude: tuple[str, ...] = Field(default=(), max_length=MAX_RULES)
    languages: tuple[str, ...] = Field(default=(), max_length=50)

    @field_validator("keywords", "exclude")
    @classmethod
    def _phrases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_clean(v, "keyword") for v in value)

    @field_validator("hashtags")
    @classmethod
    def _hashtags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        tags = tuple(_clean(v.lstrip("#"), "hashtag") for v in value)
        for tag in tags:
            if not re.fullmatch(r"\w+", tag):
                raise ValueError(f"hashtag {tag!r}: letters, digits and underscores only")
        return tags

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        out = []
        for v in value:
            code = v.strip().lower()
            if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]{2,8})?", code):
                raise ValueError(f"language {v!r}: use a code such as 'en' or 'pt-br'")
            out.append(code)
        return tuple(out)

    def matcher(self) -> KeywordMatcher:
        # A hashtag that is also a keyword is found by the keyword already ("#acme" has a word edge before "acme").
        words = {_key(k) for k in self.keywords}
        tags = [f"#{t}" for t in self.hashtags if _key(t) not in words]
        return KeywordMatcher([*self.keywords, *tags], self.exclude)

    def wants_language(self, language: str) -> bool:
        """Whether a post in ``language`` is kept (an unknown language is kept: better seen than lost)."""
        if not self.languages or not language:
            return True
        base = language.strip().lower()
        return base in self.languages or base.split("-", 1)[0] in self.languages


def _clean(value: str, what: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise ValueError(f"an empty {what}")
    if len(value) > MAX_RULE_LENGTH:
        raise ValueError(f"{what} {value[:20]!r}…: at most {MAX_RULE_LENGTH} characters")
    return value
