"""Text features of the trainable triage models, and scoring a batch with numpy alone.

A post is the set of its distinct word types and known word bigrams (binary presence, the limit of sublinear term
frequency). A word type ``t`` stands for the sparse vector

    u_t = idf(t) e_word(t) + GRAM_WEIGHT / sqrt(g_t) * (sum of e_gram(h) over its g_t character n-grams)

where the n-grams are 2..5 characters of ``"<word>"`` (so they stay within word boundaries), hashed into
GRAM_BUCKETS buckets; a known bigram ``b`` is ``idf(b) e_bigram(b)``. A post's vector is the sum of its parts divided
by the square root of the sum of their squared norms (hash collisions aside, its L2 norm).

Every part is a fixed vector, so a linear model's weights fold into one score row per word type,
``S[t] = u_t . W``: computed once at load for the vocabulary and once per batch for unseen words, whose n-grams still
count ("refundd" and "cancelation" borrow the weight of "refund" and "cancellation"). Scoring a batch is one dict
lookup per token, a sort, a gather and a segmented sum; no Python per post. Training (training/train.py) builds the same
vectors as a sparse matrix, so the two paths agree to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import repeat

import numpy as np
import numpy.typing as npt

from caredesk.triage.arrays import distinct, first_of_runs, sum_rows
from caredesk.triage.text.language import word_weights
from caredesk.triage.text.lexicon import NEGATORS, PLACEHOLDERS, SCOPE_BREAKERS
from caredesk.triage.text.tokens import SEP, TokenBatch

FloatArray = npt.NDArray[np.float64]
F32Array = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

GRAM_BITS = 18
GRAM_BUCKETS = 1 << GRAM_BITS
MIN_GRAM, MAX_GRAM = 2, 5
MAX_WORD_CHARS = 30  # longer tokens are cut: their grams past this say nothing new and cost time
# Norm of a word's n-gram part; its word feature weighs its idf (1 for the commonest words, 5-9 for rare ones).
GRAM_WEIGHT = 3.0
MIN_BIGRAM_DOCS = 2  # a bigram seen in one training post teaches only that post

_FNV_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0xFF51AFD7ED558CCD)
_SEEDS = {n: np.uint64(0xCBF29CE484222325 ^ (n * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF)) for n in range(1, 9)}
_NO_GRAMS = frozenset(PLACEHOLDERS)
# Tokens that carry weight but explain nothing to an agent: function words, placeholders, most punctuation.
_DULL = frozenset(word_weights()) | _NO_GRAMS | frozenset(".,;:!¿\x00")


def nameable(words: Sequence[str]) -> npt.NDArray[np.bool_]:
    """Which word types may be named in a reason."""
    return np.fromiter((w.lstrip(NEGATED) not in _DULL for w in words), dtype=bool, count=len(words))


NEGATED = "\u00ac"  # "¬good": "good" within three tokens after a negator, before any punctuation or "but"
NEGATION_WINDOW = 3
SCOPE_ENDS = frozenset(SCOPE_BREAKERS) | {SEP}


def has_grams(word: str) -> bool:
    """Words and numbers get n-grams; punctuation, emoji, placeholders and negated words are whole tokens only."""
    return word[:1].isalnum() and word not in _NO_GRAMS


def model_tokens(lower: list[str]) -> list[str]:
    """The tokens a model sees: as tokenised, with words in a negator's scope marked (``"not good"`` becomes
    ``not ¬good``), so that "good" and "not good" get different weights. The scope is the rules' (features.py):
    up to three tokens, ended by punctuation, "but" or the end of the post."""
    n = len(lower)
    neg = np.fromiter(map(NEGATORS.__contains__, lower), dtype=bool, count=n)
    if not neg.any():
        return lower
    ends = np.fromiter(map(SCOPE_ENDS.__contains__, lower), dtype=bool, count=n)
    return mark_negated(lower, negated_positions(neg, ends))


def negated_positions(neg: npt.NDArray[np.bool_], ends: npt.NDArray[np.bool_]) -> IntArray:
    """Positions of the tokens in a negator's scope, given which tokens are negators and which end a scope."""
    n = len(neg)
    idx = np.arange(n)
    prev_neg = np.concatenate(([-1], np.maximum.accumulate(np.where(neg, idx, -1))[:-1]))
    last_end = np.maximum.accumulate(np.where(ends, idx, -1))
    negated = (prev_neg >= 0) & (idx - prev_neg <= NEGATION_WINDOW) & (last_end < prev_neg) & ~neg
    return np.flatnonzero(negated)


def mark_negated(lower: list[str], positions: IntArray) -> list[str]:
    """``lower`` with the tokens at ``positions`` marked as negated (a copy, unless there are none)."""
    if not len(positions):
        return lower
    out = list(lower)
    for i in positions.tolist():
        out[i] = NEGATED + out[i]
    return out


def display(name: str) -> str:
    """A feature's name for a reason: a negated word reads "not good", a bigram drops the marker."""
    if " " in name:
        return name.replace(NEGATED, "")
    return "not " + name[1:] if name.startswith(NEGATED) else name


def gram_triplets(words: Sequence[str]) -> tuple[IntArray, IntArray, FloatArray]:
    """Hashed n-grams of each word as (word index, bucket, weight) triplets, sorted by word index.

    A word's weights are ``GRAM_WEIGHT / sqrt(g)`` for its ``g`` n-grams, so the n-gram part of every word has norm
    ``GRAM_WEIGHT`` (repeated grams within a word aside). The hash is FNV-1a over code points with a final mix,
    computed on uint64 arrays: deterministic across runs and platforms (Python's ``hash`` is salted per process).
    """
    pick = [i for i, w in enumerate(words) if has_grams(w)]
    if not pick:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0)
    padded = ["<" + words[i][:MAX_WORD_CHARS] + ">" for i in pick]
    if len(padded) <= _FEW_WORDS:
        per_word = [_word_buckets(word) for word in padded]
        counts = np.fromiter(map(len, per_word), dtype=np.int64, count=len(per_word))
        owners = np.repeat(np.asarray(pick, dtype=np.int64), counts)
        bucket = np.fromiter((b for found in per_word for b in found), dtype=np.int64, count=int(counts.sum()))
        return owners, bucket, GRAM_WEIGHT / np.sqrt(np.repeat(counts, counts).astype(np.float64))
    # All words hashed as one stream of code points, keeping the grams that lie within one word: no padding to
    # the longest word (twice as fast as a words × width matrix on a batch's unseen words).
    lengths = np.fromiter(map(len, padded), dtype=np.int64, count=len(padded))
    codes = np.frombuffer("".join(padded).encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
    ends = np.cumsum(lengths)
    word_of = np.repeat(np.arange(len(padded)), lengths)
    word_idx: list[IntArray] = []
    buckets: list[IntArray] = []
    for n in range(MIN_GRAM, MAX_GRAM + 1):
        n_pos = len(codes) - n + 1
        if n_pos <= 0:
            break
        h = np.full(n_pos, _SEEDS[n], dtype=np.uint64)
        for k in range(n):
            h ^= codes[k : k + n_pos]
            h *= _FNV_PRIME
        h ^= h >> np.uint64(33)
        h *= _MIX
        h ^= h >> np.uint64(29)
        owner = word_of[:n_pos]
        valid = np.flatnonzero(np.arange(n_pos) + n <= ends[owner])
        word_idx.append(owner[valid])
        buckets.append((h[valid] & np.uint64(GRAM_BUCKETS - 1)).astype(np.int64))
    rows_all = np.concatenate(word_idx)
    order = np.argsort(rows_all, kind="stable")
    rows_all = rows_all[order]
    bucket_all = np.concatenate(buckets)[order]
    counts = np.bincount(rows_all, minlength=len(padded))
    weights = GRAM_WEIGHT / np.sqrt(counts[rows_all].astype(np.float64))
    return np.asarray(pick, dtype=np.int64)[rows_all], bucket_all, weights


# Below this many words, hashing in plain Python beats the forty-odd numpy calls of the array version (a single
# post's unseen words); both give the same buckets.
_FEW_WORDS = 8
_MASK64 = (1 << 64) - 1
_INT_SEEDS = {n: int(seed) for n, seed in _SEEDS.items()}
_INT_PRIME, _INT_MIX = int(_FNV_PRIME), int(_MIX)


def _word_buckets(padded: str) -> list[int]:
    """The n-gram buckets of one padded word in :func:`gram_triplets`' order: by n, then by position."""
    codes = list(map(ord, padded))
    out: list[int] = []
    for n in range(MIN_GRAM, MAX_GRAM + 1):
        seed = _INT_SEEDS[n]
        for pos in range(len(codes) - n + 1):
            h = seed
            for code in codes[pos : pos + n]:
                h = ((h ^ code) * _INT_PRIME) & _MASK64
            h ^= h >> 33
            h = (h * _INT_MIX) & _MASK64
            h ^= h >> 29
            out.append(h & (GRAM_BUCKETS - 1))
    return out


@dataclass(frozen=True, slots=True, eq=False)
class TextWeights:
    """The text part of one linear model: vocabulary, idf and weights per word, bigram and n-gram bucket.

    ``K`` columns: one (log-odds of the second class) for two classes, else one per class.
    """

    vocab: tuple[str, ...]  # word types, SEP excluded
    idf: FloatArray  # (V,)
    bigrams: IntArray  # (B, 2) indices into vocab
    bigram_idf: FloatArray  # (B,)
    w_word: F32Array  # (V, K)
    w_gram: F32Array  # (GRAM_BUCKETS, K)
    w_bigram: F32Array  # (B, K)

    @property
    def n_columns(self) -> int:
        return int(self.w_word.shape[1])


@dataclass(frozen=True, slots=True)
class Encoded:
    """A scored batch: text logits per column plus what is needed to name the words behind them.

    What only reasons need (each entry's score row, whether its word may be named, the words' display pieces) is
    computed when asked for: a batch decided without reasons never pays for it.
    """

    logits: F32Array  # (n posts, total columns), already divided by each model's norm
    posts: IntArray  # per distinct (post, word type) entry
    types: IntArray  # type ids: the vocabulary's, then this batch's unseen words
    vocab_scores: F32Array  # (n vocabulary types, total columns): the S row of each known type
    new_scores: F32Array  # (len(new_words), total columns): the S rows of this batch's unseen words
    inv_norm: FloatArray  # (n posts, n models)
    bigram_posts: IntArray
    bigram_rows: IntArray
    bigram_scores: F32Array  # (n known bigrams, total columns), idf included, not normalised
    bigram_named: npt.NDArray[np.bool_]
    new_words: list[str]  # this batch's unseen words, type ids from len(vocab_scores) on
    vocab_named: npt.NDArray[np.bool_]  # per vocabulary type: may be named in a reason
    vocab_pieces: npt.NDArray[np.object_]  # " +'name'" per vocabulary type, then per bigram row

    @property
    def n_types(self) -> int:
        """Vocabulary and unseen words."""
        return len(self.vocab_scores) + len(self.new_words)

    @property
    def entry_scores(self) -> F32Array:
        """(n entries, total columns): the S row of each entry's type."""
        known = self.types < len(self.vocab_scores)
        out: F32Array = self.vocab_scores[np.where(known, self.types, 0)]
        if self.new_words:
            unseen = np.flatnonzero(~known)
            out[unseen] = self.new_scores[self.types[unseen] - len(self.vocab_scores)]
        return out

    @property
    def entry_named(self) -> npt.NDArray[np.bool_]:
        """Per entry: its type may be named in a reason."""
        named = self.vocab_named
        if self.new_words:
            named = np.concatenate([named, nameable(self.new_words)])
        out: npt.NDArray[np.bool_] = named[self.types]
        return out

    @property
    def pieces(self) -> npt.NDArray[np.object_]:
        """" +'name'" per type id, then per bigram row (reason text)."""
        if not self.new_words:
            return self.vocab_pieces
        n_vocab = len(self.vocab_scores)
        extra = np.array([f" +'{display(w)}'" for w in self.new_words], dtype=object)
        return np.concatenate([self.vocab_pieces[:n_vocab], extra, self.vocab_pieces[n_vocab:]])


class Scorer:
    """Scores a token batch for several models at once over the union of their vocabularies.

    Built once per model bundle; safe to share between threads (nothing is mutated after ``__init__``).
    """

    def __init__(self, parts: Sequence[TextWeights]) -> None:
        self.parts = tuple(parts)
        index: dict[str, int] = {SEP: 0}
        for part in parts:
            for word in part.vocab:
                index.setdefault(word, len(index))
        self.index = index
        self.words: list[str] = list(index)
        n = len(index)
        self.n_types = n
        widths = [p.n_columns for p in parts]
        self.col0 = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
        self.n_columns = int(self.col0[-1])
        # Every model's n-gram weights side by side: an unseen word's grams are then one gather of one row each.
        self._w_gram = np.ascontiguousarray(np.hstack([p.w_gram for p in parts]), dtype=np.float32)
        self.scores, self.sq_norms = self._gram_part(self.words)
        bigram_keys: dict[int, int] = {}
        for m, part in enumerate(parts):
            ids = np.fromiter((index[w] for w in part.vocab), dtype=np.int64, count=len(part.vocab))
            cols = slice(int(self.col0[m]), int(self.col0[m + 1]))
            self.scores[ids, cols] += (part.idf[:, None] * part.w_word).astype(np.float32)
            self.sq_norms[ids, m] += part.idf**2
            if len(part.bigrams):
                pair_ids = ids[part.bigrams]
                for key in (pair_ids[:, 0] * n + pair_ids[:, 1]).tolist():
                    bigram_keys.setdefault(key, len(bigram_keys))
        keys = np.array(sorted(bigram_keys), dtype=np.int64)
        self.bigram_keys = keys
        self.bigram_weights = np.zeros((len(keys), self.n_columns), dtype=np.float32)
        self.bigram_sq = np.zeros((len(keys), len(parts)))
        for m, part in enumerate(parts):
            if not len(part.bigrams):
                continue
            ids = np.fromiter((index[w] for w in part.vocab), dtype=np.int64, count=len(part.vocab))
            pair_ids = ids[part.bigrams]
            rows = np.searchsorted(keys, pair_ids[:, 0] * n + pair_ids[:, 1])
            cols = slice(int(self.col0[m]), int(self.col0[m + 1]))
            self.bigram_weights[rows, cols] = part.bigram_idf[:, None] * part.w_bigram
            self.bigram_sq[rows, m] = part.bigram_idf**2
        self.bigram_names = [f"{self.words[k // n]} {self.words[k % n]}" for k in keys.tolist()]
        self.named = nameable(self.words)
        self.pieces = np.array([f" +'{display(w)}'" for w in [*self.words, *self.bigram_names]], dtype=object)
        self.bigram_named = self.named[keys // n] | self.named[keys % n] if len(keys) else np.zeros(0, dtype=bool)

    def _gram_part(self, words: Sequence[str]) -> tuple[F32Array, FloatArray]:
        """Score rows and squared norms of the n-gram parts of ``words``, for every model."""
        word_idx, bucket, weight = gram_triplets(words)
        scores: F32Array = sum_rows(word_idx, bucket, len(words), self._w_gram, weight.astype(np.float32))
        sq = np.zeros((len(words), len(self.parts)))
        sq[word_idx[first_of_runs(word_idx)]] = GRAM_WEIGHT**2
        return scores, sq

    def encode(self, batch: TokenBatch, tokens: list[str] | None = None, known: IntArray | None = None) -> Encoded:
        """Score a batch. ``tokens`` are its model tokens (:func:`model_tokens` of ``batch.lower``) and ``known``
        their vocabulary ids (-1 where unseen), for a caller that has them already; both are computed if left out.
        """
        lower = model_tokens(batch.lower) if tokens is None else tokens
        n_tok = len(lower)
        n_posts = batch.n_posts
        if known is None:
            ids = np.fromiter(map(self.index.get, lower, repeat(-1)), dtype=np.int64, count=n_tok)
        else:
            ids = known.copy()
        n_vocab = self.n_types
        new_words: list[str] = []
        oov_pos = np.flatnonzero(ids < 0)
        if len(oov_pos):
            oov_tokens = [lower[i] for i in oov_pos.tolist()]
            local = {w: n_vocab + j for j, w in enumerate(dict.fromkeys(oov_tokens))}
            ids[oov_pos] = np.fromiter(map(local.__getitem__, oov_tokens), dtype=np.int64, count=len(oov_tokens))
            new_words = list(local)
        n_types = n_vocab + len(new_words)
        # The rows of unseen words are computed for this batch; their type ids follow the vocabulary's.
        new_scores, new_sq = self._gram_part(new_words)
        empty = np.zeros(0, dtype=np.int64)
        bigram_posts = bigram_rows = empty
        if not n_posts:
            text = np.zeros((0, self.n_columns), dtype=np.float32)
            inv_norm = np.zeros((0, len(self.parts)))
            return self._encoded(text, empty, empty, new_scores, inv_norm, empty, empty, new_words)
        # Distinct (post, type) pairs, sorted by post; every post opens with its separator (type 0).
        keys = distinct(batch.post_of * n_types + ids)
        posts = keys // n_types
        types = keys - posts * n_types
        if new_words:
            # Known and unseen types summed from their own tables: joining the tables would copy the vocabulary's
            # for every call, which one-post triage notices.
            seen = types < n_vocab
            known, unseen = np.flatnonzero(seen), np.flatnonzero(~seen)
            owners_k, rows_k = posts[known], types[known]
            owners_u, rows_u = posts[unseen], types[unseen] - n_vocab
            text = sum_rows(owners_k, rows_k, n_posts, self.scores) + sum_rows(owners_u, rows_u, n_posts, new_scores)
            sq = sum_rows(owners_k, rows_k, n_posts, self.sq_norms) + sum_rows(owners_u, rows_u, n_posts, new_sq)
        else:
            text = sum_rows(posts, types, n_posts, self.scores)
            sq = sum_rows(posts, types, n_posts, self.sq_norms)
        if n_tok > 1 and len(self.bigram_keys):
            a, b = ids[:-1], ids[1:]
            n = self.n_types
            ok = np.flatnonzero((a > 0) & (b > 0) & (a < n) & (b < n))
            # Only the distinct (post, bigram) pairs matter, so the queries can be sorted first (with their post
            # in the low digits): a binary search over sorted queries walks the table in order, several times
            # faster than in text order.
            pair, pair_post = np.divmod(np.sort((a[ok] * n + b[ok]) * n_posts + batch.post_of[ok]), n_posts)
            pos = np.minimum(np.searchsorted(self.bigram_keys, pair), len(self.bigram_keys) - 1)
            hit = self.bigram_keys[pos] == pair
            if hit.any():
                n_bigrams = len(self.bigram_keys)
                found = distinct(pair_post[hit] * n_bigrams + pos[hit])
                bigram_posts = found // n_bigrams
                bigram_rows = found - bigram_posts * n_bigrams
                text += sum_rows(bigram_posts, bigram_rows, n_posts, self.bigram_weights)
                sq += sum_rows(bigram_posts, bigram_rows, n_posts, self.bigram_sq)
        inv_norm = np.where(sq > 0, 1.0 / np.sqrt(np.maximum(sq, 1e-12)), 0.0)
        widths = np.diff(self.col0)
        text *= np.repeat(inv_norm, widths, axis=1).astype(np.float32)
        return self._encoded(text, posts, types, new_scores, inv_norm, bigram_posts, bigram_rows, new_words)

    def _encoded(
        self,
        text: F32Array,
        posts: IntArray,
        types: IntArray,
        new_scores: F32Array,
        inv_norm: FloatArray,
        bigram_posts: IntArray,
        bigram_rows: IntArray,
        new_words: list[str],
    ) -> Encoded:
        return Encoded(
            logits=text,
            posts=posts,
            types=types,
            vocab_scores=self.scores,
            new_scores=new_scores,
            inv_norm=inv_norm,
            bigram_posts=bigram_posts,
            bigram_rows=bigram_rows,
            bigram_scores=self.bigram_weights,
            bigram_named=self.bigram_named,
            new_words=new_words,
            vocab_named=self.named,
            vocab_pieces=self.pieces,
        )


def top_terms(
    enc: Encoded,
    column: IntArray,
    sign: FloatArray,
    model: int,
    *,
    prefix: str,
    top: int = 2,
    min_weight: float = 0.05,
) -> list[str | None]:
    """Per post, ``"<prefix> +'refund' +'charged twice'"``: the words and bigrams that pushed hardest towards the
    decision, or None when none pushed by ``min_weight``. ``column`` is the score column per post (-1: none);
    ``sign`` is +1 where a larger score means the decided value, -1 where the decision went against the column
    (a binary "false"). ``model`` picks the norm (the bundle position of the model that owns the column)."""
    return top_terms_per_task(enc, column[None, :], sign[None, :], [model], prefix=prefix, top=top,
                              min_weight=min_weight)[0]


def top_terms_per_task(
    enc: Encoded,
    columns: IntArray,
    signs: FloatArray,
    models: Sequence[int],
    *,
    prefix: str,
    top: int = 2,
    min_weight: float = 0.05,
) -> list[list[str | None]]:
    """:func:`top_terms` for several decisions at once: row ``k`` of ``columns`` and ``signs`` and ``models[k]``
    describe decision ``k``. One pass over the batch instead of one per decision."""
    n_tasks, n = columns.shape
    text = np.full(n_tasks * n, None, dtype=object)
    if not n:
        return text.reshape(n_tasks, n).tolist()  # type: ignore[no-any-return]
    model = np.asarray(models, dtype=np.int64)[:, None]
    # Rows are decisions, columns entries; "virtual posts" k * n + post keep the decisions apart below.
    col_t = columns[:, enc.posts]
    w_t = enc.entry_scores[np.arange(len(enc.posts)), np.maximum(col_t, 0)] * enc.inv_norm[enc.posts, model]
    w_t = w_t * signs[:, enc.posts]
    task_t, entry_t = np.nonzero((col_t >= 0) & enc.entry_named & (w_t >= min_weight))
    col_b = columns[:, enc.bigram_posts]
    w_b = enc.bigram_scores[enc.bigram_rows, np.maximum(col_b, 0)] * enc.inv_norm[enc.bigram_posts, model]
    w_b = w_b * signs[:, enc.bigram_posts]
    task_b, entry_b = np.nonzero((col_b >= 0) & enc.bigram_named[enc.bigram_rows] & (w_b >= min_weight))
    if not len(entry_t) and not len(entry_b):
        return text.reshape(n_tasks, n).tolist()  # type: ignore[no-any-return]
    posts = np.concatenate([task_t * n + enc.posts[entry_t], task_b * n + enc.bigram_posts[entry_b]])
    # Both parts are sorted by virtual post, so this stable sort is one merge; a post's terms keep their order.
    order = np.argsort(posts, kind="stable")
    posts = posts[order]
    weight = np.concatenate([w_t[task_t, entry_t], w_b[task_b, entry_b]])[order]
    name = np.concatenate([enc.types[entry_t], enc.n_types + enc.bigram_rows[entry_b]])[order]
    starts = np.flatnonzero(first_of_runs(posts))
    segment = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(posts))))
    position = np.arange(len(posts))
    # Each round names every post's heaviest term not yet named (the first of equals), which is what sorting each
    # post's terms by weight would give, without sorting all of them.
    for r in range(top):
        heaviest = np.maximum.reduceat(weight, starts)
        pick = np.minimum.reduceat(np.where(weight == heaviest[segment], position, len(posts)), starts)
        pick = pick[heaviest > -np.inf]  # a post whose terms are all named already
        if not len(pick):
            break
        weight[pick] = -np.inf
        p = posts[pick]
        piece = enc.pieces[name[pick]]
        text[p] = prefix + piece if r == 0 else text[p] + piece
    return text.reshape(n_tasks, n).tolist()  # type: ignore[no-any-return]
