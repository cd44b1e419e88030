"""Vectorised lookup of one- and two-token phrases in a token stream.

Each phrase gets a row; a feature matrix indexed by row then turns a whole batch into per-token features with one
gather. Unigrams are found with a dict lookup per token (run by ``map`` in C); bigrams by combining the two word
ids into one integer key and binary-searching the sorted keys of known bigrams, so no bigram strings are built.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import repeat

import numpy as np
import numpy.typing as npt

from caredesk.triage.text.tokens import phrase_tokens


class PhraseIndex:
    """Rows: every word that occurs in a phrase, then every bigram phrase, then one all-zero row (``zero``).

    Words and bigrams are stored lowercased, as tokenised by :func:`caredesk.triage.text.tokens.phrase_tokens`.
    """

    def __init__(self, phrases: Iterable[str]) -> None:
        words: dict[str, int] = {}
        bigrams: dict[tuple[int, int], int] = {}
        self._phrase_row: dict[str, int] = {}
        pending: list[tuple[str, list[str]]] = []
        for phrase in phrases:
            toks = phrase_tokens(phrase)
            if not 1 <= len(toks) <= 2:
                raise ValueError(f"phrase {phrase!r} must be one or two tokens, got {toks!r}")
            for tok in toks:
                words.setdefault(tok, len(words))
            pending.append((phrase, toks))
        for phrase, toks in pending:
            if len(toks) == 1:
                self._phrase_row[phrase] = words[toks[0]]
            else:
                pair = (words[toks[0]], words[toks[1]])
                row = bigrams.setdefault(pair, len(words) + len(bigrams))
                self._phrase_row[phrase] = row
        self.words = words
        self._bigram_row = bigrams
        self.n_words = len(words)
        self.zero = len(words) + len(bigrams)
        self.n_rows = self.zero + 1
        # The key base must exceed every id, the zero row included, so keys never collide.
        self._base = self.n_rows + 1
        order = sorted(bigrams.items(), key=lambda kv: kv[0][0] * self._base + kv[0][1])
        self._keys = np.array([a * self._base + b for (a, b), _ in order], dtype=np.int64)
        self._bigram_rows = np.array([row for _, row in order], dtype=np.int64)
        self.names: list[str] = [""] * self.n_rows
        for word, i in words.items():
            self.names[i] = word
        for (a, b), row in bigrams.items():
            self.names[row] = f"{self.names[a]} {self.names[b]}"

    def row(self, phrase: str) -> int:
        """Row of a phrase given to the constructor."""
        return self._phrase_row[phrase]

    def find(self, phrase: str) -> int | None:
        """Row of any phrase whose tokens this index knows, or None."""
        row = self._phrase_row.get(phrase)
        if row is not None:
            return row
        toks = phrase_tokens(phrase)
        ids = [self.words.get(t) for t in toks]
        if len(ids) == 1:
            return ids[0]
        if len(ids) == 2 and ids[0] is not None and ids[1] is not None:
            return self._bigram_row.get((ids[0], ids[1]))
        return None

    def lookup(self, lower: list[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Per token: its word row (or ``zero``) and the row of the bigram it starts (or ``zero``)."""
        n = len(lower)
        uni = np.fromiter(map(self.words.get, lower, repeat(self.zero)), dtype=np.int64, count=n)
        bi = np.full(n, self.zero, dtype=np.int64)
        if n > 1 and len(self._keys):
            keys = uni[:-1] * self._base + uni[1:]
            pos = np.searchsorted(self._keys, keys)
            np.minimum(pos, len(self._keys) - 1, out=pos)
            hit = self._keys[pos] == keys
            bi[:-1][hit] = self._bigram_rows[pos[hit]]
        return uni, bi
