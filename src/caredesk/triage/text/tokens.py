"""Batch tokenisation: many posts become one flat token stream with post boundaries marked.

The whole batch is joined into one string so that every regex pass and the lowercasing run once in C over the
batch instead of once per post; a NUL separator token marks where each post starts. Only the lowercased tokens are
kept: nothing downstream reads the original case (shouting is counted on the joined text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from caredesk.triage.text.lexicon import BANG, EMAIL, MENTION, URL

SEP = "\x00"
_LOWER_JOIN = "\x01"  # never produced by the token regex, so it can glue tokens for one lower() call

# URLs and e-mails may not run across the separator, hence [^\s\x00] rather than \S.
# Each pattern starts with a literal so the regex engine can skip ahead (a leading lookbehind is 5-10x slower).
_URL_RE = re.compile(r"https?://[^\s\x00]+|www\.[^\s\x00]+")
# The same without its "www." branch, for text without "www.": a single literal prefix lets the engine skip ahead.
_HTTP_RE = re.compile(r"https?://[^\s\x00]+")
# Only the "@domain" half of an address is replaced: matching the local part too means trying every word start.
_EMAIL_DOMAIN_RE = re.compile(r"@(?<=\w@)[\w-]+(?:\.[\w-]+)+")
_MENTION_RE = re.compile(r"@(?<![\w@]@)\w+")
_BANG_RE = re.compile(r"!!+")  # not !{2,}: a repeat gives the engine no literal prefix to skip ahead to
# Possessive quantifiers (++, *+) below give the same matches, since giving characters back could never let the
# rest of the pattern match, and save the engine recording backtrack points: the token regex runs 10-15% faster.
_SHOUT_RE = re.compile(r"[A-Z](?<![A-Za-z][A-Z])[A-Z]{2,}+(?![A-Za-z])")
_TOKEN_RE = re.compile(
    r"[^\W_]++(?:'[^\W_]++)*+"  # words and numbers, with inner apostrophes ("don't")
    r"|[?¿.,;:!]"  # punctuation that ends a clause or asks a question
    r"|[\U0001F300-\U0001FAFF\u2600-\u27BF\u2B50\u2B55]"  # one emoji per token
    r"|\x00"
)


# Lowercasing the whole text and then tokenising gives the same tokens as lowercasing each token (one pass over
# the text instead of a join, a lower and a split of the tokens), because every character keeps its length and its
# token class when lowercased (tests/triage/test_triage_fastpath.py checks all of Unicode), with two exceptions:
# "İ" grows to two characters, and "Σ" becomes "ς" or "σ" depending on its neighbours, which differ between the
# two orders. A batch with either takes the slower way.
_CONTEXT_LOWER = "\u03a3"


@dataclass(frozen=True, slots=True)
class TokenBatch:
    """Lowercased tokens of a batch. ``lower[sep_pos[i]]`` is the separator that opens post ``i``."""

    lower: list[str]
    sep_pos: npt.NDArray[np.int64]  # one per post, ascending
    post_of: npt.NDArray[np.int64]  # post index of each token (a separator belongs to the post it opens)

    @property
    def n_posts(self) -> int:
        return len(self.sep_pos)

    @classmethod
    def from_separators(cls, lower: list[str], is_sep: npt.NDArray[np.bool_]) -> TokenBatch:
        """``is_sep`` marks the separator tokens (a caller that has looked the tokens up already knows them)."""
        sep_pos = np.flatnonzero(is_sep).astype(np.int64)
        post_of = np.cumsum(is_sep, dtype=np.int64) - 1
        return cls(lower=lower, sep_pos=sep_pos, post_of=post_of)


def join_posts(texts: Sequence[str]) -> tuple[str, npt.NDArray[np.int64]]:
    """Join texts with separators; returns the joined text and where each post's text starts in it.

    A NUL inside a post would be taken for a boundary, so it becomes a space; lengths and offsets stay the same.
    """
    joined = SEP + SEP.join(texts)
    if joined.count(SEP) != len(texts):
        joined = SEP + SEP.join(t.replace(SEP, " ") for t in texts)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.empty(len(texts), dtype=np.int64)
    if len(texts):
        starts[0] = 1
        np.cumsum(lengths[:-1] + 1, out=starts[1:])
        starts[1:] += 1
    return joined, starts


def normalize(joined: str) -> str:
    """Replace URLs, addresses, handles and '!!!' by placeholder words; unify apostrophes."""
    text = joined.replace("\u2019", "'").replace("\u2018", "'")
    text = (_URL_RE if "www." in text else _HTTP_RE).sub(f" {URL} ", text)
    text = _EMAIL_DOMAIN_RE.sub(f" {EMAIL} ", text)
    text = _MENTION_RE.sub(f" {MENTION} ", text)
    return _BANG_RE.sub(f" {BANG} ", text)


def shouted_words(joined: str, starts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Per post, how many words of three or more letters are written in capitals (ASCII only)."""
    positions = [m.start() for m in _SHOUT_RE.finditer(joined)]
    if not positions:
        return np.zeros(len(starts), dtype=np.int64)
    posts = np.searchsorted(starts, positions, side="right") - 1
    return np.bincount(posts, minlength=len(starts)).astype(np.int64)


def lower_tokens(joined: str) -> list[str]:
    """The lowercased tokens of a joined batch, separators included."""
    text = normalize(joined)
    lowered = text.lower()
    if len(lowered) == len(text) and _CONTEXT_LOWER not in text:
        found: list[str] = _TOKEN_RE.findall(lowered)
        return found
    tokens: list[str] = _TOKEN_RE.findall(text)
    return _LOWER_JOIN.join(tokens).lower().split(_LOWER_JOIN) if tokens else []


def tokenize_joined(joined: str) -> TokenBatch:
    lower = lower_tokens(joined)
    return TokenBatch.from_separators(lower, np.fromiter(map(SEP.__eq__, lower), dtype=bool, count=len(lower)))


def tokenize(texts: Sequence[str]) -> TokenBatch:
    return tokenize_joined(join_posts(texts)[0])


def replace_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate (a JSON "\\ud83d" escape without its pair decodes to one) replaced by
    U+FFFD: such text has no UTF-8 form, so a tokenizer library or a UTF-8 file cannot take it."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def phrase_tokens(phrase: str) -> list[str]:
    """Tokens of a lexicon or keyword phrase, exactly as they would appear in a post."""
    return tokenize([phrase]).lower[1:]
