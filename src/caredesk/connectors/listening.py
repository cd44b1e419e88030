"""Listening rules: which posts that nobody addressed to the brand are still the brand's business.

A brand listens for its names, products and campaign words (``keywords``), hashtags, and drops what matches an
exclusion ("orange juice" for a telecom called Orange); ``languages`` keeps only posts in those languages. Providers
that read open streams (a hashtag timeline, the Bluesky firehose, news feeds) run every post through a
:class:`KeywordMatcher`; a post that matched only a rule is *not summoned*: the author did not address the brand,
and some platforms' rules forbid answering it through their API.

Matching is case-insensitive on Unicode case folding, on whole words or phrases (a keyword "orange" does not match
"oranges" or "storange"), with hashtags and @handles matching their bare word too. All keywords compile into one
regular expression, so the cost per post does not grow with the number of keywords in practice
(``bench/listening_speed.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_RULES = 500
MAX_RULE_LENGTH = 100


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
        return KeywordMatcher([*self.keywords, *(f"#{t}" for t in self.hashtags)], self.exclude)

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


# Scripts written without spaces between words (Chinese, Japanese, Thai, ...): a keyword in them is found anywhere.
_UNSPACED = re.compile(r"[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _patterns(phrases: Iterable[str]) -> tuple[re.Pattern[str], ...]:
    """One expression for the phrases that must stand as whole words and one for those in unspaced scripts (kept
    apart: a lookbehind on each alternative stops the engine from scanning fast for the first characters)."""
    spaced: list[str] = []
    unspaced: list[str] = []
    for phrase in sorted({p.casefold().lstrip("#@") for p in phrases if p.strip("#@ ")}, key=len, reverse=True):
        # Words of a phrase may be separated by any run of spaces.
        body = r"\s+".join(re.escape(word) for word in phrase.split())
        (unspaced if _UNSPACED.match(phrase[0]) or _UNSPACED.match(phrase[-1]) else spaced).append(body)
    found = []
    if spaced:
        found.append(re.compile(r"(?<!\w)(?:" + "|".join(spaced) + r")(?!\w)"))
    if unspaced:
        found.append(re.compile("|".join(unspaced)))
    return tuple(found)


class KeywordMatcher:
    """Finds which of ``keywords`` a text contains, unless it contains one of ``exclude``."""

    def __init__(self, keywords: Sequence[str], exclude: Sequence[str] = ()) -> None:
        self._canonical = {" ".join(k.casefold().lstrip("#@").split()): k for k in keywords if k.strip("#@ ")}
        self._find = _patterns(keywords)
        self._exclude = _patterns(exclude)

    def match(self, text: str) -> tuple[str, ...]:
        """The keywords found in ``text`` (as configured, in order of appearance, once each); () when none or
        when an exclusion matches."""
        if not self._find or not text:
            return ()
        folded = text.casefold()
        hits = [m for pattern in self._find for m in pattern.finditer(folded)]
        if not hits:
            return ()
        if any(pattern.search(folded) for pattern in self._exclude):
            return ()
        if len(self._find) > 1:
            hits.sort(key=lambda m: m.start())
        seen: dict[str, None] = {}
        for hit in hits:
            word = " ".join(hit.group().split())
            seen.setdefault(self._canonical.get(word, word), None)
        return tuple(seen)
