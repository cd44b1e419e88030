"""Triage: lexicon rules plus the shipped linear model, combined by fixed, readable formulas.

Everything up to the final assembly is vectorised over the batch (features.py, vectorize.py, reasons.py); only the
reason lists and the result objects are built per post. The rules decide clear cases ("charged twice", "no
internet"); the model (word, bigram and character n-gram features, trained on a few thousand posts, see
MODEL_CARD.md) weighs in on every post and decides where no rule fires. Every weight below is used once, next to
the formula it belongs to. A brand's trained :class:`~caredesk.triage.training.ModelBundle` can override the
learned tasks it has (``classify(..., model=bundle)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from operator import attrgetter
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from caredesk.triage import features as F
from caredesk.triage.language import decide as decide_language
from caredesk.triage.pii import detect_pii_joined
from caredesk.triage.reasons import (
    MAX_WORD_REASONS,
    NEG,
    NO_HITS,
    POS,
    ReasonTexts,
    followers,
    keyword_hits,
    quote,
)
from caredesk.triage.text import TokenBatch, join_posts, shouted_words, tokenize_joined
from caredesk.triage.topics import DEFAULT_TOPICS, FALLBACK_TOPIC, GENERIC_TOPICS, Taxonomy, validate_taxonomy
from caredesk.triage.training import ModelBundle
from caredesk.triage.types import Label, PostSignals, TriageResult
from caredesk.triage.vectorize import Encoded, top_terms

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

QUESTION_MIN = 0.6
SPAM_MIN = 0.5
URGENT, HIGH = 0.75, 0.5
# Scores are capped below 1: neither a lexicon nor a model trained on a few thousand posts is ever certain.
MAX_SCORE = 0.99
SENTIMENTS = ("negative", "neutral", "positive")
NO_EVIDENCE_SENTIMENT = (0.25, 0.5, 0.25)
MODEL_FILE = "model_default.npz"
MODEL_TASKS = ("complaint", "needs_reply", "sentiment", "topic")
MODEL_REASON_MIN = 0.08  # smallest normalised per-word model contribution worth naming
BRAND_REASON_WORDS = 3

_TEXT = attrgetter("text")
_FOLLOWERS = attrgetter("author_followers")
_PRIOR = attrgetter("prior_contacts")
_DIRECT = attrgetter("is_direct")
_IN_THREAD = attrgetter("is_reply")
_VERIFIED = attrgetter("author_verified")


def _sigmoid(x: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))
    return out


def _softmax(x: FloatArray) -> FloatArray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    out: FloatArray = z / z.sum(axis=1, keepdims=True)
    return out


def _score(x: FloatArray) -> list[float]:
    return np.round(np.clip(x, 0.0, MAX_SCORE), 3).tolist()  # type: ignore[no-any-return]


class _TopicPlan:
    """A taxonomy prepared for scoring: keyword table, model columns and the role of each key."""

    def __init__(self, topics: Taxonomy, table: F.FeatureTable, model_classes: tuple[str, ...]) -> None:
        validate_taxonomy(topics)
        self.table = F.TopicTable(topics, table.index)
        self.keys = self.table.keys
        # Keyword weight: form-of-post topics count half, so "thanks, but my bill is wrong" is billing.
        self.keyword_weight = np.array([0.5 if k in GENERIC_TOPICS else 1.0 for k in self.keys])
        self.model_map = np.array([model_classes.index(k) if k in model_classes else -1 for k in self.keys])
        self.col = {k: i for i, k in enumerate(self.keys)}
        self.other = self.col[FALLBACK_TOPIC]


@dataclass(frozen=True, slots=True)
class _Signals:
    """Per-post rule signals shared by several decisions."""

    lex: FloatArray  # lexicon valence squashed to -1..1
    bang: BoolArray
    shout: BoolArray
    complaint_cue: FloatArray
    outage: FloatArray
    churn: FloatArray
    safety: FloatArray
    question: BoolArray
    request: FloatArray
    links_only: BoolArray


@dataclass(frozen=True, slots=True)
class _Context:
    """Per-post signals besides the text, as arrays."""

    followers: FloatArray
    prior: FloatArray
    direct: BoolArray
    in_thread: BoolArray
    verified: BoolArray
    brand_reason: dict[int, str]

    @classmethod
    def empty(cls, n: int) -> _Context:
        zeros, no = np.zeros(n), np.zeros(n, dtype=bool)
        return cls(zeros, zeros, no, no, no, {})


@dataclass(frozen=True, slots=True)
class _Decisions:
    """Every per-post decision and the evidence behind it, as arrays; ``_assemble`` turns them into results."""

    feats: F.TokenFeatures
    enc: Encoded
    sig: _Signals
    complaint_logit: FloatArray
    complaint: BoolArray
    p_complaint: FloatArray
    m_complaint: FloatArray
    m_reply: FloatArray
    m_sent: FloatArray  # (n, 3) model logits
    sentiment: npt.NDArray[np.int64]
    sent_score: FloatArray
    sent_conf: FloatArray
    spam_evidence: FloatArray
    spam: BoolArray
    p_spam: FloatArray
    reply_logit: FloatArray
    needs_reply: BoolArray
    p_reply: FloatArray
    praise_only: BoolArray
    praise_bonus: BoolArray
    topic_scores: FloatArray
    topic_idx: npt.NDArray[np.int64]
    topic_conf: FloatArray
    urgency: FloatArray
    urgency_conf: FloatArray
    parts: FloatArray
    priority: npt.NDArray[np.int64]


# Scores a learned sentiment mix (training.Mix) may combine; each is also a column of Engine.stack_features.
MIX_INPUTS = (
    "valence",
    "model_negative",
    "model_neutral",
    "model_positive",
    "complaint_logit",
    "complaint_cues",
    "bang",
    "shout",
    "question",
)

# Names of the columns of Engine.stack_features, in order: what a brand model learns on top of the default one.
STACK_FEATURES: tuple[str, ...] = (
    "complaint_logit",
    "reply_logit",
    "sentiment_score",
    "valence",
    "spam_evidence",
    "complaint_cues",
    "outage",
    "churn",
    "safety",
    "request",
    "question",
    "bang",
    "shout",
    "links_only",
    "model_complaint",
    "model_reply",
    "model_negative",
    "model_neutral",
    "model_positive",
    *(f"topic_{key}" for key in DEFAULT_TOPICS),
)


class Engine:
    """Classifier state for one shipped model: phrase tables, the model's scorer and prepared taxonomies.

    Safe to share between threads.
    """

    def __init__(self, base: ModelBundle) -> None:
        missing = set(MODEL_TASKS) - set(base.models)
        if missing:
            raise ValueError(f"the default model lacks tasks {sorted(missing)}")
        self.base = base
        default_keywords = {kw for _name, kws in DEFAULT_TOPICS.values() for kw in kws}
        self.table = F.FeatureTable(extra_phrases=default_keywords)
        self.texts = ReasonTexts(self.table)
        self.scorer = base.scorer
        self.model_index = {task: i for i, task in enumerate(base.models)}
        self.model_cols = {
            task: slice(int(self.scorer.col0[i]), int(self.scorer.col0[i + 1])) for task, i in self.model_index.items()
        }
        self.bias = {task: m.bias for task, m in base.models.items()}
        self.sentiment_classes = base.models["sentiment"].classes
        if tuple(sorted(self.sentiment_classes)) != SENTIMENTS:
            raise ValueError(f"sentiment classes {self.sentiment_classes} are not {SENTIMENTS}")
        self.topic_classes = base.models["topic"].classes
        self.sentiment_mix = base.mixes.get("sentiment")
        if self.sentiment_mix is not None:
            mix = self.sentiment_mix
            unknown = set(mix.inputs) - set(MIX_INPUTS)
            if unknown or tuple(sorted(mix.classes)) != SENTIMENTS:
                raise ValueError(f"sentiment mix inputs {sorted(unknown)} or classes {mix.classes} not understood")
            self._mix_order = np.array([mix.classes.index(c) for c in SENTIMENTS])
        self._default_plan = _TopicPlan(DEFAULT_TOPICS, self.table, self.topic_classes)
        self._plans: dict[Any, _TopicPlan] = {}
        self._handles: dict[tuple[str, ...], frozenset[str]] = {}

    def _plan(self, topics: Taxonomy | None) -> _TopicPlan:
        if topics is None or topics is DEFAULT_TOPICS:
            return self._default_plan
        key = tuple((k, name, tuple(kws)) for k, (name, kws) in topics.items())
        plan = self._plans.get(key)
        if plan is None:
            if len(self._plans) >= 32:  # brands are few; more means a caller builds a taxonomy per call
                self._plans.clear()
            plan = self._plans[key] = _TopicPlan(topics, self.table, self.topic_classes)
        return plan

    def _brand_reason(self, post: PostSignals) -> str | None:
        """Posts by the brand itself and plain retweets of the brand are not customer contacts."""
        handles = self._handles.get(post.brand_handles)
        if handles is None:
            handles = frozenset(h.lower().lstrip("@") for h in post.brand_handles)
            if len(self._handles) < 1024:
                self._handles[post.brand_handles] = handles
        author = post.author_handle.lower().lstrip("@")
        if author and author in handles:
            return f"rule: our own post (@{author})"
        text = post.text.lstrip()
        if text[:4].upper() == "RT @":
            retweeted = text[4:].split(":", 1)[0].split(None, 1)
            if retweeted and retweeted[0].lower() in handles:
                return f"rule: retweet of the brand (@{retweeted[0].lower()})"
        return None

    def _model_logits(self, enc: Encoded, task: str) -> FloatArray:
        """The shipped model's logits; a post with no words at all (empty, only punctuation) gets no push from it:
        the intercepts alone encode the training set's class balance, not anything about the post."""
        has_words = enc.inv_norm[:, self.model_index[task]] > 0
        out: FloatArray = enc.logits[:, self.model_cols[task]].astype(np.float64) + np.outer(has_words, self.bias[task])
        return out

    def _decide(
        self, joined: str, starts: npt.NDArray[np.int64], batch: TokenBatch, plan: _TopicPlan, ctx: _Context
    ) -> _Decisions:
        n = batch.n_posts
        feats = self.table.featurize(batch)
        s = feats.sums
        kw_counts = plan.table.featurize(feats)[0]
        enc = self.scorer.encode(batch)
        shouted = shouted_words(joined, starts)

        # --- model ------------------------------------------------------------------------------------------------
        m_complaint = self._model_logits(enc, "complaint")[:, 0]
        m_reply = self._model_logits(enc, "needs_reply")[:, 0]
        m_sent = self._model_logits(enc, "sentiment")
        p_sent = _softmax(m_sent)
        p_topic = _softmax(self._model_logits(enc, "topic"))

        # --- shared rule signals ------------------------------------------------------------------------------------
        words = feats.words
        bang = s[:, F.BANGS] > 0
        shout = (shouted >= 2) & (shouted >= 0.5 * words)
        sig = _Signals(
            # Exclamation runs and shouting make whatever is said stronger, not more negative.
            lex=np.tanh(s[:, F.VAL] * (1.0 + 0.3 * bang + 0.3 * shout) / 3.0),
            bang=bang,
            shout=shout,
            complaint_cue=np.minimum(s[:, F.COMPLAINT], 2.0),
            outage=np.minimum(s[:, F.OUTAGE], 1.0),
            churn=np.minimum(s[:, F.CHURN], 1.0),
            safety=np.minimum(s[:, F.SAFETY], 1.0),
            question=(s[:, F.QUESTION] + 0.6 * feats.question_start) >= QUESTION_MIN,
            request=np.minimum(s[:, F.REQUEST], 1.5),
            links_only=(s[:, F.URLS] > 0) & (words <= 0),
        )

        # --- complaint: rule log-odds plus the model's (clipped: a clear rule is not overruled) ----------------------
        complaint_logit = (
            -0.8
            + 1.4 * sig.complaint_cue
            + 2.0 * np.maximum(-sig.lex, 0.0)
            - 2.0 * np.maximum(sig.lex, 0.0) * (sig.complaint_cue < 1.0)
            + 0.8 * sig.outage
            + 0.6 * sig.churn
            + 0.6 * sig.safety
            + 1.0 * np.clip(m_complaint, -4.0, 4.0)
        )
        p_complaint = _sigmoid(complaint_logit)
        complaint = p_complaint >= 0.5

        # --- sentiment: lexicon valence, the model's logits and the complaint evidence, weighed by the learned mix ----
        if self.sentiment_mix is None:
            # Only while build.py fits the mix itself: the sentiment model alone.
            p_mix = p_sent[:, [self.sentiment_classes.index(c) for c in SENTIMENTS]]
        else:
            inputs = {
                "valence": sig.lex,
                **{f"model_{c}": np.clip(m_sent[:, i], -8, 8) / 4 for i, c in enumerate(self.sentiment_classes)},
                "complaint_logit": np.clip(complaint_logit, -8, 8) / 4,
                "complaint_cues": sig.complaint_cue,
                "bang": bang.astype(np.float64),
                "shout": shout.astype(np.float64),
                "question": sig.question.astype(np.float64),
            }
            x = np.column_stack([inputs[name] for name in self.sentiment_mix.inputs])
            p_mix = _softmax(self.sentiment_mix.logits(x))[:, self._mix_order]
            # Without any evidence (empty, punctuation only) the mix's intercepts would just repeat the class balance
            # of the training examples; such a post says nothing, so it is neutral, with low confidence.
            p_mix[(words <= 0) & (sig.lex == 0)] = NO_EVIDENCE_SENTIMENT
        sentiment = np.argmax(p_mix, axis=1)
        sent_score = p_mix[:, 2] - p_mix[:, 0]
        sent_conf = p_mix[np.arange(n), sentiment]

        # --- spam ---------------------------------------------------------------------------------------------------
        spam_evidence = (
            s[:, F.SPAM]
            + 0.3 * ((s[:, F.URLS] > 0) & (s[:, F.SPAM] > 0))
            + 1.2 * sig.links_only
            - 0.6 * np.minimum(sig.complaint_cue, 1.0)
        )
        p_spam = 1.0 - np.exp(-1.3 * np.maximum(spam_evidence, 0.0))
        if ctx.brand_reason:
            p_spam[list(ctx.brand_reason)] = MAX_SCORE
        spam = p_spam >= SPAM_MIN

        # --- needs_reply --------------------------------------------------------------------------------------------
        positive = sentiment == 2
        praise_only = positive & ~complaint & ~sig.question & (sig.request < 1.0)
        reply_logit = (
            -0.5
            + 2.5 * complaint
            + 2.0 * sig.question
            + 1.2 * sig.request
            + 6.0 * ctx.direct  # a direct message always gets an answer, praise included
            + 0.5 * ctx.in_thread
            - 2.5 * praise_only
            + 0.8 * np.clip(m_reply, -3.0, 3.0)
        )
        p_reply = _sigmoid(reply_logit)
        p_reply[spam] = np.minimum(p_reply[spam], 1.0 - p_spam[spam])
        needs_reply = p_reply >= 0.5

        # --- topic: keywords, model probability, and form-of-post bonuses ---------------------------------------------
        topic_scores = kw_counts * plan.keyword_weight
        has_model = plan.model_map >= 0
        topic_scores[:, has_model] += 1.5 * p_topic[:, plan.model_map[has_model]]
        praise_bonus = positive & ~complaint
        if "praise" in plan.col:
            # A post that only praises is about the praise, whatever product it names ("love the new app").
            topic_scores[:, plan.col["praise"]] += 0.6 * praise_bonus + 1.0 * praise_only - 1.0 * complaint
        if "question" in plan.col:
            topic_scores[:, plan.col["question"]] += 0.6 * sig.question - 0.5 * complaint
        # The outage and churn rules describe the same things as those topics; let them vote there too.
        if "outage" in plan.col:
            topic_scores[:, plan.col["outage"]] += sig.outage
        if "cancellation" in plan.col:
            topic_scores[:, plan.col["cancellation"]] += sig.churn
        topic_scores[:, plan.other] += 0.35
        topic_idx = np.argmax(topic_scores, axis=1)
        best = topic_scores[np.arange(n), topic_idx]
        topic_conf = best / np.maximum(np.maximum(topic_scores, 0.0).sum(axis=1), 1e-9)

        # --- urgency: independent pieces of evidence combined as a noisy-or -------------------------------------------
        parts = np.stack(
            [
                np.where(complaint, 0.15, np.where(needs_reply, 0.08, 0.0)),
                0.45 * sig.outage,
                0.45 * sig.churn,
                0.4 * sig.safety,
                0.3 * np.clip((np.log10(ctx.followers + 1.0) - 2.0) / 4.5, 0.0, 1.0),  # 100 -> 0, ~3M -> 0.3
                0.05 * ctx.verified,
                np.minimum(1.0 - 0.85 ** np.minimum(ctx.prior, 10.0), 0.4),
                0.2 * ((sentiment == 0) & ((sig.lex <= -0.6) | sig.bang | sig.shout)),
            ],
            axis=1,
        )
        parts[spam] = 0.0
        urgency = np.round(1.0 - np.prod(1.0 - parts, axis=1), 2)
        urgency_conf = np.minimum(0.5 + 0.1 * (parts[:, 1:] > 0).sum(axis=1), 0.9)
        priority = np.where(~needs_reply, 1, np.where(urgency >= URGENT, 4, np.where(urgency >= HIGH, 3, 2)))
        return _Decisions(
            feats=feats,
            enc=enc,
            sig=sig,
            complaint_logit=complaint_logit,
            complaint=complaint,
            p_complaint=p_complaint,
            m_complaint=m_complaint,
            m_reply=m_reply,
            m_sent=m_sent,
            sentiment=sentiment,
            sent_score=sent_score,
            sent_conf=sent_conf,
            spam_evidence=spam_evidence,
            spam=spam,
            p_spam=p_spam,
            reply_logit=reply_logit,
            needs_reply=needs_reply,
            p_reply=p_reply,
            praise_only=praise_only,
            praise_bonus=praise_bonus,
            topic_scores=topic_scores,
            topic_idx=topic_idx,
            topic_conf=topic_conf,
            urgency=urgency,
            urgency_conf=urgency_conf,
            parts=parts,
            priority=priority,
        )

    @staticmethod
    def _stack_matrix(d: _Decisions) -> FloatArray:
        sig = d.sig
        cols = [
            np.clip(d.complaint_logit, -8, 8) / 4,
            np.clip(d.reply_logit, -8, 8) / 4,
            d.sent_score,
            sig.lex,
            np.clip(d.spam_evidence, -2, 3),
            sig.complaint_cue,
            sig.outage,
            sig.churn,
            sig.safety,
            sig.request,
            sig.question.astype(np.float64),
            sig.bang.astype(np.float64),
            sig.shout.astype(np.float64),
            sig.links_only.astype(np.float64),
            np.clip(d.m_complaint, -8, 8) / 4,
            np.clip(d.m_reply, -8, 8) / 4,
            *(np.clip(d.m_sent, -8, 8) / 4).T,
        ]
        scores = np.clip(d.topic_scores, -2, 4) / 2
        return np.column_stack([*cols, scores])

    def stack_features(self, texts: Sequence[str], batch: TokenBatch | None = None) -> FloatArray:
        """The default classifier's scores and rule evidence per text (columns: STACK_FEATURES), for stacking.

        Computed from the text alone (no followers, no direct-message flag), over the default taxonomy.
        """
        n = len(texts)
        if not n:
            return np.zeros((0, len(STACK_FEATURES)))
        joined, starts = join_posts(texts)
        if batch is None:
            batch = tokenize_joined(joined)
        out = self._stack_matrix(self._decide(joined, starts, batch, self._default_plan, _Context.empty(n)))
        assert out.shape[1] == len(STACK_FEATURES)
        return out

    def classify(
        self, posts: Sequence[PostSignals], topics: Taxonomy | None = None, model: ModelBundle | None = None
    ) -> list[TriageResult]:
        n = len(posts)
        if n == 0:
            return []
        plan = self._plan(topics)
        texts: list[str] = list(map(_TEXT, posts))
        lengths = list(map(len, texts))
        joined, starts = join_posts(texts)
        batch = tokenize_joined(joined)
        brand_reason: dict[int, str] = {}
        for i, post in enumerate(posts):
            if post.brand_handles:
                reason = self._brand_reason(post)
                if reason:
                    brand_reason[i] = reason
        ctx = _Context(
            followers=np.fromiter(map(_FOLLOWERS, posts), dtype=np.float64, count=n),
            prior=np.fromiter(map(_PRIOR, posts), dtype=np.float64, count=n),
            direct=np.fromiter(map(_DIRECT, posts), dtype=bool, count=n),
            in_thread=np.fromiter(map(_IN_THREAD, posts), dtype=bool, count=n),
            verified=np.fromiter(map(_VERIFIED, posts), dtype=bool, count=n),
            brand_reason=brand_reason,
        )
        d = self._decide(joined, starts, batch, plan, ctx)
        feats = d.feats
        pii = detect_pii_joined(joined, starts, lengths)
        languages = decide_language(feats.sums[:, F.LANG0 : F.N_COLS])

        # --- model reasons ----------------------------------------------------------------------------------------
        enc = d.enc
        ones = np.ones(n)
        zeros = np.zeros(n, dtype=np.int64)
        idx = self.model_index
        cols = self.model_cols
        sent_model = np.array([self.sentiment_classes.index(c) for c in SENTIMENTS])[d.sentiment]
        topic_model = plan.model_map[d.topic_idx]
        model_why = (
            top_terms(enc, cols["complaint"].start + zeros, np.where(d.complaint, 1.0, -1.0), idx["complaint"],
                      prefix="model:", min_weight=MODEL_REASON_MIN),
            top_terms(enc, cols["needs_reply"].start + zeros, np.where(d.needs_reply, 1.0, -1.0), idx["needs_reply"],
                      prefix="model:", min_weight=MODEL_REASON_MIN),
            top_terms(enc, cols["sentiment"].start + sent_model, ones, idx["sentiment"], prefix="model:",
                      min_weight=MODEL_REASON_MIN),
            top_terms(enc, np.where(topic_model >= 0, cols["topic"].start + topic_model, -1), ones, idx["topic"],
                      prefix="model:", min_weight=MODEL_REASON_MIN),
        )
        table = plan.table
        kw_uni, kw_bi = table.featurize(feats)[1:]
        results = self._assemble(
            n=n,
            sig=d.sig,
            complaint=d.complaint,
            p_complaint=d.p_complaint,
            sentiment=d.sentiment,
            sent_conf=d.sent_conf,
            needs_reply=d.needs_reply,
            p_reply=d.p_reply,
            praise_only=d.praise_only,
            direct=ctx.direct,
            in_thread=ctx.in_thread,
            spam=d.spam,
            p_spam=d.p_spam,
            brand_reason=brand_reason,
            plan=plan,
            topic_idx=d.topic_idx,
            topic_conf=d.topic_conf,
            praise_bonus=d.praise_bonus,
            topic_hits=keyword_hits(table.index.names, table.matrix, kw_uni, kw_bi, feats.batch.post_of, d.topic_idx),
            urgency=d.urgency,
            urgency_conf=d.urgency_conf,
            parts=d.parts,
            followers_n=ctx.followers,
            prior=ctx.prior,
            priority=d.priority,
            word_hits=self.texts.word_hits(feats),
            model_why=model_why,
            pii=pii,
            languages=languages,
        )
        if model is not None and model.models:
            results = _override(results, model, texts, batch, self._stack_matrix(d), d.needs_reply)
        return results

    def _assemble(
        self,
        *,
        n: int,
        sig: _Signals,
        complaint: BoolArray,
        p_complaint: FloatArray,
        sentiment: npt.NDArray[np.int64],
        sent_conf: FloatArray,
        needs_reply: BoolArray,
        p_reply: FloatArray,
        praise_only: BoolArray,
        direct: BoolArray,
        in_thread: BoolArray,
        spam: BoolArray,
        p_spam: FloatArray,
        brand_reason: dict[int, str],
        plan: _TopicPlan,
        topic_idx: npt.NDArray[np.int64],
        topic_conf: FloatArray,
        praise_bonus: BoolArray,
        topic_hits: dict[int, list[str]],
        urgency: FloatArray,
        urgency_conf: FloatArray,
        parts: FloatArray,
        followers_n: FloatArray,
        prior: FloatArray,
        priority: npt.NDArray[np.int64],
        word_hits: dict[int, dict[int, list[str]]],
        model_why: tuple[list[Any], list[Any], list[Any], list[Any]],
        pii: list[Any],
        languages: list[str],
    ) -> list[TriageResult]:
        """Build the results: the only per-post Python loop, so it works on plain lists and reuses labels."""
        keys = plan.keys
        label_cache: dict[tuple[Any, float], Label] = {}

        def label(value: Any, score: float, why: list[str], model: str | None) -> Label:
            if model is not None:
                return Label(value, score, (*why, model))
            if why:
                return Label(value, score, tuple(why))
            key = (value, score)
            found = label_cache.get(key)
            if found is None:
                found = label_cache[key] = Label(value, score, ())
            return found

        complaint_l, needs_l, spam_l = complaint.tolist(), needs_reply.tolist(), spam.tolist()
        c_score = _score(np.where(complaint, p_complaint, 1 - p_complaint))
        r_score = _score(np.where(needs_reply, p_reply, 1 - p_reply))
        s_score = _score(np.where(spam, p_spam, 1 - p_spam))
        sent_l, sent_score = sentiment.tolist(), _score(sent_conf)
        topic_l, topic_score = topic_idx.tolist(), _score(topic_conf)
        urgency_l, urgency_score = urgency.tolist(), _score(urgency_conf)
        priority_l = priority.tolist()
        question_l, direct_l, thread_l = sig.question.tolist(), direct.tolist(), in_thread.tolist()
        praise_l, praise_bonus_l = praise_only.tolist(), praise_bonus.tolist()
        bang_l, shout_l, links_l = sig.bang.tolist(), sig.shout.tolist(), sig.links_only.tolist()
        parts_any = cast(list[bool], (parts[:, 1:] > 0).any(axis=1).tolist())
        parts_l = parts.tolist()
        followers_l, prior_l = followers_n.tolist(), prior.tolist()
        outage_l, churn_l = (sig.outage > 0).tolist(), (sig.churn > 0).tolist()
        why_complaint, why_reply, why_sent, why_topic = model_why
        empty: list[str] = []
        results: list[TriageResult] = []
        for i in range(n):
            hits = word_hits.get(i, NO_HITS)
            is_complaint, is_spam, sent = complaint_l[i], spam_l[i], sent_l[i]

            why = hits.get(F.COMPLAINT, empty)
            if is_complaint and not why:
                why = hits.get(NEG, empty)
            elif not is_complaint and sent == 2:
                why = hits.get(POS, empty)
            complaint_label = label(is_complaint, c_score[i], why[:MAX_WORD_REASONS], why_complaint[i])

            why = hits.get(NEG if sent == 0 else POS, empty)[:MAX_WORD_REASONS] if sent != 1 else []
            if sent != 1:
                if bang_l[i]:
                    why.append("rule: '!!!'")
                if shout_l[i]:
                    why.append("rule: ALL CAPS")
            sentiment_label = label(SENTIMENTS[sent], sent_score[i], why, why_sent[i])

            if needs_l[i]:
                why = ["rule: complaint"] if is_complaint else []
                if question_l[i]:
                    why.append("rule: question")
                why.extend(hits.get(F.REQUEST, empty)[:MAX_WORD_REASONS])
                if direct_l[i]:
                    why.append("rule: direct message")
                if thread_l[i]:
                    why.append("rule: reply in a thread")
            elif is_spam:
                why = ["rule: spam"]
            elif praise_l[i]:
                why = ["rule: praise only"]
            else:
                why = ["rule: no complaint, question or request"]
            needs_label = label(needs_l[i], r_score[i], why, why_reply[i])

            key = keys[topic_l[i]]
            why = topic_hits.get(i, empty)
            if key == "praise" and praise_bonus_l[i]:
                why = [*why, "rule: positive, no complaint"]
            elif key == "question" and question_l[i]:
                why = [*why, "rule: question"]
            elif key == "outage" and outage_l[i]:
                why = [*why, f"rule: outage ({quote(hits.get(F.OUTAGE, empty))})"]
            elif key == "cancellation" and churn_l[i]:
                why = [*why, f"rule: churn threat ({quote(hits.get(F.CHURN, empty))})"]
            topic_label = label(key, topic_score[i], why, why_topic[i])

            why = []
            if parts_any[i]:
                u = parts_l[i]
                if u[1]:
                    why.append(f"rule: outage ({quote(hits.get(F.OUTAGE, empty))})")
                if u[2]:
                    why.append(f"rule: churn threat ({quote(hits.get(F.CHURN, empty))})")
                if u[3]:
                    why.append(f"rule: safety, fraud or vulnerable customer ({quote(hits.get(F.SAFETY, empty))})")
                if u[4]:
                    why.append(f"rule: {followers(followers_l[i])} followers")
                if u[5]:
                    why.append("rule: verified author")
                if u[6]:
                    why.append(f"rule: {int(prior_l[i])} earlier contacts")
                if u[7]:
                    why.append("rule: strong negative")
            urgency_label = label(urgency_l[i], urgency_score[i], why, None)

            if is_spam:
                reason = brand_reason.get(i)
                if reason:
                    why = [reason]
                else:
                    why = hits.get(F.SPAM, empty)[:MAX_WORD_REASONS]
                    if links_l[i]:
                        why.append("rule: links only")
            else:
                why = empty
            spam_label = label(is_spam, s_score[i], why, None)

            results.append(
                TriageResult(
                    complaint=complaint_label,
                    needs_reply=needs_label,
                    sentiment=sentiment_label,
                    topic=topic_label,
                    urgency=urgency_label,
                    priority=priority_l[i],
                    spam=spam_label,
                    pii=pii[i],
                    language=languages[i],
                )
            )
        return results


def _override(
    results: list[TriageResult],
    bundle: ModelBundle,
    texts: Sequence[str],
    batch: TokenBatch,
    stack: FloatArray,
    default_reply: BoolArray,
) -> list[TriageResult]:
    """Replace the decisions of the tasks a brand bundle has by its models' (reasons: "brand model: +'word'").

    The default reasons are kept after the brand model's when both agree on the value. Priority follows an
    overridden needs_reply (1 when no reply is needed).
    """
    from caredesk.triage.training import DENSE_SCALE, Dense, _embed

    enc = bundle.scorer.encode(batch)
    embedding: FloatArray | None = None
    new: dict[str, list[Label]] = {}
    for m, (task, trained) in enumerate(bundle.models.items()):
        if trained.uses_semantic and embedding is None:
            embedding = _embed(texts)
        start, stop = int(bundle.scorer.col0[m]), int(bundle.scorer.col0[m + 1])
        dense = Dense(stack * DENSE_SCALE if trained.uses_stack else None, embedding if trained.uses_semantic else None)
        z = trained.logits_from(enc.logits[:, start:stop], dense)
        proba = trained.proba_from_logits(z)
        pred, column, sign = trained.decision_columns(z)
        why = top_terms(enc, start + column, sign, m, prefix="brand model:", top=BRAND_REASON_WORDS)
        labels: list[Label] = []
        for i, (p, r) in enumerate(zip(pred.tolist(), why, strict=True)):
            value: Any = trained.classes[p]
            if task in ("complaint", "needs_reply", "spam"):
                value = value == "true"
            old = getattr(results[i], task)
            reasons: tuple[str, ...] = (r,) if r else ("brand model",)
            if old.value == value:
                reasons = reasons + tuple(x for x in old.reasons if not x.startswith("model:"))
            labels.append(Label(value, round(min(float(proba[i, p]), MAX_SCORE), 3), reasons))
        new[task] = labels
    out: list[TriageResult] = []
    for i, result in enumerate(results):
        changes: dict[str, Any] = {task: labels[i] for task, labels in new.items()}
        if "needs_reply" in new and new["needs_reply"][i].value != bool(default_reply[i]):
            urgency = float(result.urgency.value)
            needs = bool(new["needs_reply"][i].value)
            changes["priority"] = 1 if not needs else 4 if urgency >= URGENT else 3 if urgency >= HIGH else 2
        out.append(replace(result, **changes))
    return out


@cache
def default_engine() -> Engine:
    """The engine for the shipped model, built on first use."""
    return Engine(load_default_model())


def load_default_model() -> ModelBundle:
    with resources.as_file(resources.files("caredesk.triage") / MODEL_FILE) as shipped:
        return ModelBundle.load(shipped)


def classify(
    posts: Sequence[PostSignals], topics: Taxonomy | None = None, model: ModelBundle | None = None
) -> list[TriageResult]:
    """Triage a batch of posts. Pure: depends only on the posts, ``topics`` and the models.

    ``topics`` is a brand taxonomy (key -> (display name, keywords)); it must contain ``"other"``. ``model`` is a
    brand's trained bundle: its tasks override the default decisions (a brand topic need not be in ``topics``).
    """
    return default_engine().classify(posts, topics, model)


def classify_one(
    post: PostSignals, topics: Taxonomy | None = None, model: ModelBundle | None = None
) -> TriageResult:
    """Triage one post; the same result as ``classify([post])[0]``."""
    return default_engine().classify([post], topics, model)[0]
