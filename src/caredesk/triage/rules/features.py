"""Per-token feature rows for lexicon rules and language profiles, and their per-post sums.

Every phrase the rules know gets one row in a dense matrix; a batch becomes per-post sums with one
gather and one ``np.add.reduceat``. Negation is handled by a second copy of the matrix (the "negated" rows) that a
token uses when a negator precedes it, so "not working" costs no Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from caredesk.triage.arrays import sum_rows
from caredesk.triage.rules.topics import Taxonomy
from caredesk.triage.text import lexicon
from caredesk.triage.text.language import LANGUAGES, word_weights
from caredesk.triage.text.phrases import PhraseIndex
from caredesk.triage.text.tokens import TokenBatch

# Rule columns; their non-zero entries become reasons.
VAL, COMPLAINT, OUTAGE, CHURN, SAFETY, REQUEST, QUESTION, SPAM = range(8)
N_RULES = 8
RULE_TABLES: dict[int, dict[str, float]] = {
    VAL: lexicon.VALENCE,
    COMPLAINT: lexicon.COMPLAINT,
    OUTAGE: lexicon.OUTAGE,
    CHURN: lexicon.CHURN,
    SAFETY: lexicon.SAFETY,
    REQUEST: lexicon.REQUEST,
    QUESTION: lexicon.QUESTION,
    SPAM: lexicon.SPAM,
}
# Counting columns. NONWORD marks punctuation, placeholders and known emoji, so words = tokens - NONWORD.
URLS, MENTIONS, BANGS, NONWORD = range(8, 12)
LANG0 = 12
N_COLS = LANG0 + len(LANGUAGES)

# How a negated word changes: valence flips and weakens ("not bad" is mildly good, "not good" fairly bad).
NEGATED_VALENCE = -0.75
NEGATION_WINDOW = 3
CONTRAST_BEFORE, CONTRAST_AFTER = 0.5, 1.5


@dataclass(frozen=True, slots=True)
class TokenFeatures:
    """Per-post sums plus the per-token rows that produced them (kept to explain decisions)."""

    sums: npt.NDArray[np.float64]  # (n posts, n columns)
    words: npt.NDArray[np.float64]  # (n posts,) tokens that are words or numbers
    question_start: npt.NDArray[np.bool_]  # (n posts,) post opens with a question word
    word_rows: npt.NDArray[np.int64]  # per token: its word row (the zero row when unknown)
    rows: npt.NDArray[np.int64]  # per token: word row, offset by n_rows when negated
    bigram_rows: npt.NDArray[np.int64]  # per token: row of the bigram it starts, or the zero row
    negated_by: npt.NDArray[np.int64]  # per token: distance back to its negator, 0 when not negated
    batch: TokenBatch


class FeatureTable:
    """The rule rows; build once, reuse for every batch."""

    def __init__(self, extra_phrases: Iterable[str] = ()) -> None:
        """``extra_phrases`` get rows without features, so a topic taxonomy can share this index."""
        lang_weights = word_weights()
        phrases: set[str] = set(extra_phrases)
        for table in RULE_TABLES.values():
            phrases.update(table)
        phrases.update(lexicon.NEGATORS, lexicon.SCOPE_BREAKERS, lexicon.INTENSIFIERS, lexicon.SERVICE_NOUNS)
        phrases.update(lexicon.SERVICE_VERBS, lexicon.QUESTION_STARTERS, lexicon.PLACEHOLDERS, lang_weights)
        index = PhraseIndex(sorted(phrases))
        self.index = index
        n_rows = index.n_rows
        self.n_rows = n_rows
        self.n_cols = N_COLS

        plain = np.zeros((n_rows, self.n_cols), dtype=np.float32)
        for col, table in RULE_TABLES.items():
            for phrase, weight in table.items():
                plain[index.row(phrase), col] += weight
        plain[index.row(lexicon.URL), URLS] = 1
        plain[index.row(lexicon.MENTION), MENTIONS] = 1
        plain[index.row(lexicon.BANG), BANGS] = 1
        nonword = [*lexicon.PLACEHOLDERS, "?", "¿", ".", ",", ";", ":", "!"]
        nonword += [w for w in lexicon.VALENCE if not w[0].isalnum()]
        plain[[index.row(w) for w in nonword], NONWORD] = 1
        for word, weights in lang_weights.items():
            plain[index.row(word), LANG0:N_COLS] = weights

        negated = plain.copy()
        emoji = [index.row(w) for w in lexicon.VALENCE if not w[0].isalnum()]
        negated[:, VAL] *= NEGATED_VALENCE
        negated[emoji, VAL] = plain[emoji, VAL]
        for word in lexicon.SERVICE_NOUNS:
            negated[index.row(word), COMPLAINT] += 1.0
            negated[index.row(word), OUTAGE] += 1.0
        for word in lexicon.SERVICE_VERBS:
            negated[index.row(word), COMPLAINT] += 1.0
        # Rows [0, n_rows) are plain, [n_rows, 2 n_rows) negated; the zero row stays zero in both halves.
        self.matrix = np.vstack([plain, negated])
        self._valence = np.ascontiguousarray(self.matrix[:, VAL])

        def flags(words: Iterable[str]) -> npt.NDArray[np.bool_]:
            out = np.zeros(n_rows, dtype=bool)
            out[[index.row(w) for w in words]] = True
            return out

        self.negator = flags(lexicon.NEGATORS)
        self.contrast = flags(lexicon.CONTRAST)
        self.breaker = flags(lexicon.SCOPE_BREAKERS)
        self.question_starter = flags(lexicon.QUESTION_STARTERS)
        self.mention = flags([lexicon.MENTION])
        self.intensity = np.ones(n_rows, dtype=np.float32)
        for word, factor in lexicon.INTENSIFIERS.items():
            self.intensity[index.row(word)] = factor

        rules = self.matrix[:, :N_RULES]
        self.has_rule = np.any(rules != 0, axis=1)
        # For each row with any rule weight: the (column, weight) pairs, looked up when writing reasons.
        self.rule_hits: dict[int, tuple[tuple[int, float], ...]] = {
            int(r): tuple((int(c), float(rules[r, c])) for c in np.flatnonzero(rules[r]))
            for r in np.flatnonzero(self.has_rule)
        }
        self.names = index.names + index.names
        self._bigrams = BigramRows(index)

    def featurize(self, batch: TokenBatch, word_rows: npt.NDArray[np.int64] | None = None) -> TokenFeatures:
        """Per-post sums. ``word_rows``: each token's word row in ``index``, for a caller that has looked the tokens
        up already (see caredesk.triage.model.codes)."""
        index = self.index
        n_tokens = len(batch.lower)
        if word_rows is None:
            uni, bi = index.lookup(batch.lower)
        else:
            uni, bi = word_rows, self._bigrams.lookup(word_rows)
        is_sep = np.zeros(n_tokens, dtype=bool)
        is_sep[batch.sep_pos] = True

        neg = self.negator[uni]
        brk = self.breaker[uni] | is_sep
        negated_by = np.zeros(n_tokens, dtype=np.int64)
        # Farthest first so that the nearest negator wins; a breaker between negator and word ends the scope.
        blocked = np.zeros(n_tokens, dtype=bool)
        distance_hits: list[npt.NDArray[np.bool_]] = []
        for k in range(1, NEGATION_WINDOW + 1):
            if k > 1:
                blocked[k - 1 :] |= brk[: n_tokens - k + 1]
            hit = np.zeros(n_tokens, dtype=bool)
            hit[k:] = neg[: n_tokens - k]
            distance_hits.append(hit & ~blocked)
        for k in range(NEGATION_WINDOW, 0, -1):
            negated_by[distance_hits[k - 1]] = k
        negated_by[is_sep] = 0

        rows = uni + self.n_rows * (negated_by > 0)
        n_posts = batch.n_posts
        sums32 = sum_rows(batch.post_of, rows, n_posts, self.matrix)
        # Valence is weighted per token (by an intensifier before it and by "but"), so its column is summed apart.
        valence = self._valence[rows]
        if n_tokens > 1:
            valence[1:] *= self.intensity[uni[:-1]]
        valence *= self._contrast_weight(uni, batch)
        if n_posts:
            sums32[:, VAL] = np.add.reduceat(valence, batch.sep_pos)
        _add_bigram_rows(sums32, batch, bi, index.zero, self.matrix)
        sums = np.asarray(sums32, dtype=np.float64)
        seg_len = np.diff(np.append(batch.sep_pos, n_tokens))
        words = seg_len - 1 - sums[:, NONWORD]

        padded = np.concatenate([uni, [index.zero, index.zero]])
        first = padded[batch.sep_pos + 1]
        second = padded[batch.sep_pos + 2]
        question_start = self.question_starter[first] | (self.mention[first] & self.question_starter[second])
        return TokenFeatures(
            sums=sums,
            words=words,
            question_start=question_start,
            word_rows=uni,
            rows=rows,
            bigram_rows=bi,
            negated_by=negated_by,
            batch=batch,
        )

    def _contrast_weight(self, uni: npt.NDArray[np.int64], batch: TokenBatch) -> npt.NDArray[np.float32]:
        """Valence weight per token: what follows "but" counts more than what precedes it ("great app but ...")."""
        is_contrast = self.contrast[uni]
        weight = np.ones(len(uni), dtype=np.float32)
        if not is_contrast.any():
            return weight
        seen = np.cumsum(is_contrast)
        ends = np.append(batch.sep_pos[1:], len(uni)) - 1
        before_post = seen[batch.sep_pos][batch.post_of]
        total_post = seen[ends][batch.post_of]
        after = seen > before_post
        before = seen < total_post
        weight[before] *= CONTRAST_BEFORE
        weight[after] *= CONTRAST_AFTER
        return weight


def _add_bigram_rows(
    sums: npt.NDArray[np.float32], batch: TokenBatch, bigram_rows: npt.NDArray[np.int64], zero: int,
    matrix: npt.NDArray[np.float32],
) -> None:
    """Add to each post's ``sums`` the ``matrix`` rows of the bigrams its tokens start (few tokens start one)."""
    starts = np.flatnonzero(bigram_rows != zero)
    if len(starts):
        sums += sum_rows(batch.post_of[starts], bigram_rows[starts], batch.n_posts, matrix)


class BigramRows:
    """The bigram rows of a phrase index, found from word rows rather than from the tokens' text.

    The same search as :meth:`PhraseIndex.lookup`, rebuilt from the index's public names: a bigram's name is its two
    words joined by a space, and no token contains a space.
    """

    def __init__(self, index: PhraseIndex) -> None:
        self.zero = index.zero
        self.base = index.n_rows + 1  # above every row, the zero row included, so keys never collide
        pairs: dict[int, int] = {}
        for row in range(index.n_words, index.zero):
            first, second = index.names[row].split(" ")
            pairs[index.words[first] * self.base + index.words[second]] = row
        keys = sorted(pairs)
        self.keys = np.array(keys, dtype=np.int64)
        self.rows = np.array([pairs[k] for k in keys], dtype=np.int64)
        # Only tokens that are the first word of some bigram phrase (about one in five) are searched for.
        self.first_word = np.zeros(index.n_rows, dtype=bool)
        self.first_word[self.keys // self.base] = True

    def lookup(self, word_rows: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Per token: the row of the bigram it starts, or the zero row."""
        n = len(word_rows)
        bi = np.full(n, self.zero, dtype=np.int64)
        if n > 1 and len(self.keys):
            at = np.flatnonzero(self.first_word[word_rows[:-1]])
            keys = word_rows[at] * self.base + word_rows[at + 1]
            pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            hit = self.keys[pos] == keys
            bi[at[hit]] = self.rows[pos[hit]]
        return bi


class TopicTable:
    """Keyword rows of one taxonomy: column ``k`` counts keywords of the ``k``-th key.

    When the feature table's index already knows every keyword (always so for DEFAULT_TOPICS, whose keywords are
    built into it) the taxonomy reuses its token lookup; otherwise it keeps an index of its own.
    """

    def __init__(self, topics: Taxonomy, shared: PhraseIndex) -> None:
        self.keys: tuple[str, ...] = tuple(topics)
        keywords = sorted({kw for _name, kws in topics.values() for kw in kws})
        rows = {kw: shared.find(kw) for kw in keywords}
        self.shared = all(r is not None for r in rows.values())
        self.index = shared if self.shared else PhraseIndex(keywords)
        row_of: dict[str, int] = (
            {kw: r for kw, r in rows.items() if r is not None}
            if self.shared
            else {kw: self.index.row(kw) for kw in keywords}
        )
        self.matrix = np.zeros((self.index.n_rows, len(self.keys)), dtype=np.float32)
        for k, (_name, kws) in enumerate(topics.values()):
            for kw in kws:
                self.matrix[row_of[kw], k] = 1.0

    def rows(self, feats: TokenFeatures) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Per token: its word row and the row of the bigram it starts, in this table's index."""
        if self.shared:
            return feats.word_rows, feats.bigram_rows
        return self.index.lookup(feats.batch.lower)

    def featurize(
        self, feats: TokenFeatures
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Per-post keyword counts per key, and per-token word and bigram rows (for reasons)."""
        batch = feats.batch
        uni, bi = self.rows(feats)
        if not batch.n_posts:
            return np.zeros((0, len(self.keys))), uni, bi
        counts = sum_rows(batch.post_of, uni, batch.n_posts, self.matrix)
        _add_bigram_rows(counts, batch, bi, self.index.zero, self.matrix)
        return np.asarray(counts, dtype=np.float64), uni, bi
