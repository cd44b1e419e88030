"""Triage: lexicon rules plus the shipped linear model, combined by fixed, readable formulas.

Every decision is vectorised over the batch (codes.py, features.py, vectorize.py, pii.py): :meth:`Engine.classify_batch`
returns them as columns (results.py), and only the reasons and the result objects of :meth:`Engine.classify` are built
per post. The rules decide clear cases ("charged twice", "no internet"); the model (word, bigram and character
n-gram features, trained on a few thousand posts, see MODEL_CARD.md) weighs in on every post and decides where no
rule fires. Every weight below is used once, next to the formula it belongs to. A brand's trained
:class:`~caredesk.triage.model.bundle.ModelBundle` can override the learned tasks it has
(``classify(..., model=bundle)``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache, partial
from importlib import resources
from itertools import repeat
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from caredesk.triage.model import bundle as model_bundle
from caredesk.triage.model.bundle import DENSE_SCALE, Dense, ModelBundle, _embed
from caredesk.triage.model.codes import CodedBatch, Vocabulary
from caredesk.triage.model.results import (
    MAX_SCORE,
    BrandDecision,
    Evidence,
    TriageBatch,
    assemble,
    label_score,
    override,
    priority_of,
)
from caredesk.triage.model.vectorize import Encoded, top_terms, top_terms_per_task
from caredesk.triage.rules import features as F
from caredesk.triage.rules.pii import detect_pii_joined
from caredesk.triage.rules.reasons import ReasonTexts, keyword_hits
from caredesk.triage.rules.topics import DEFAULT_TOPICS, FALLBACK_TOPIC, GENERIC_TOPICS, Taxonomy, validate_taxonomy
from caredesk.triage.text.language import decide as decide_language
from caredesk.triage.text.tokens import SEP, TokenBatch, join_posts, shouted_words
from caredesk.triage.types import PostSignals, TriageResult
from caredesk.triage.vocabulary import BINARY_TASKS, MODEL_TASKS, SENTIMENTS, TRUE

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

QUESTION_MIN = 0.6
SPAM_MIN = 0.5
NO_EVIDENCE_SENTIMENT = (0.25, 0.5, 0.25)
MODEL_FILE = "model_default.npz"
MODEL_REASON_MIN = 0.08  # smallest normalised per-word model contribution worth naming
BRAND_REASON_WORDS = 3

_TEXT = attrgetter("text")
_HANDLES = attrgetter("brand_handles")
_AUTHOR = attrgetter("author_handle")
_FOLLOWERS = attrgetter("author_followers")
_PRIOR = attrgetter("prior_contacts")
_DIRECT = attrgetter("is_direct")
_IN_THREAD = attrgetter("is_reply")
_VERIFIED = attrgetter("author_verified")
# Where a retweet can start (the exact test is Engine._brand_reason): only "r", "R", "t" and "T" uppercase to "R"
# or "T", and a post's leading white space is what the regex's \s matches.
_RETWEET_RE = re.compile(r"\x00\s*[Rr][Tt] @")


def _sigmoid(x: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))
    return out


def _softmax(x: FloatArray) -> FloatArray:
    z = np.exp(x - x.max(axis=1, keepdims=True))
    out: FloatArray = z / z.sum(axis=1, keepdims=True)
    return out


class _TopicPlan:
    """A taxonomy prepared for scoring: keyword table, model columns and the role of each key."""

    def __init__(self, topics: Taxonomy, table: F.FeatureTable, model_classes: tuple[str, ...]) -> None:
        validate_taxonomy(topics)
        self.table = F.TopicTable(topics, table.index)
        self.keys = self.table.keys
        # Keyword weight: form-of-post topics count half, so "thanks, but my bill is wrong" is billing.
        self.keyword_weight = np.array([0.5 if k in GENERIC_TOPICS else 1.0 for k in self.keys])
        # ... and count at most once: "??" or "what is ...?" is one question, however many marks it has.
        self.keyword_cap = np.array([1.0 if k in GENERIC_TOPICS else np.inf for k in self.keys])
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
    """Every per-post decision and the evidence behind it, as arrays."""

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


# The scores the learned sentiment mix (bundle.Mix, fitted by training/build.py) combines; each is also a column of
# Engine.stack_features, which is where build.py takes them from.
MIX_INPUTS = ("valence", "model_negative", "model_neutral", "model_positive", "complaint_logit", "complaint_cues")

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
        self.vocabulary = Vocabulary(self.table.index, self.scorer)
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

    def _handle_set(self, brand_handles: tuple[str, ...]) -> frozenset[str]:
        handles = self._handles.get(brand_handles)
        if handles is None:
            handles = frozenset(h.lower().lstrip("@") for h in brand_handles)
            if len(self._handles) < 1024:
                self._handles[brand_handles] = handles
        return handles

    def _brand_reason(self, post: PostSignals) -> str | None:
        """Posts by the brand itself and plain retweets of the brand are not customer contacts."""
        handles = self._handle_set(post.brand_handles)
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
        self, joined: str, starts: npt.NDArray[np.int64], coded: CodedBatch, plan: _TopicPlan, ctx: _Context
    ) -> _Decisions:
        batch = coded.batch
        n = batch.n_posts
        feats = self.table.featurize(batch, coded.rule_rows)
        s = feats.sums
        kw_counts = plan.table.featurize(feats)[0]
        enc = self.scorer.encode(batch, coded.model_tokens, coded.model_ids)
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
        topic_scores = np.minimum(kw_counts, plan.keyword_cap) * plan.keyword_weight
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
        priority = priority_of(needs_reply, urgency)
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
        coded = self.vocabulary.code_joined(joined) if batch is None else self.vocabulary.code(batch.lower)
        out = self._stack_matrix(self._decide(joined, starts, coded, self._default_plan, _Context.empty(n)))
        assert out.shape[1] == len(STACK_FEATURES)
        return out

    def classify(
        self, posts: Sequence[PostSignals], topics: Taxonomy | None = None, model: ModelBundle | None = None
    ) -> list[TriageResult]:
        return self.classify_batch(posts, topics, model).results()

    def classify_batch(
        self, posts: Sequence[PostSignals], topics: Taxonomy | None = None, model: ModelBundle | None = None
    ) -> TriageBatch:
        n = len(posts)
        if n == 0:
            return _empty_batch()
        plan = self._plan(topics)
        texts: list[str] = list(map(_TEXT, posts))
        joined, starts = join_posts(texts)
        coded = self.vocabulary.code_joined(joined)
        ctx = _Context(
            followers=np.fromiter(map(_FOLLOWERS, posts), dtype=np.float64, count=n),
            prior=np.fromiter(map(_PRIOR, posts), dtype=np.float64, count=n),
            direct=np.fromiter(map(_DIRECT, posts), dtype=bool, count=n),
            in_thread=np.fromiter(map(_IN_THREAD, posts), dtype=bool, count=n),
            verified=np.fromiter(map(_VERIFIED, posts), dtype=bool, count=n),
            brand_reason=self._brand_reasons(posts, joined, starts),
        )
        d = self._decide(joined, starts, coded, plan, ctx)
        keys = np.array(plan.keys, dtype=object)
        columns = TriageBatch(
            complaint=d.complaint,
            complaint_score=label_score(np.where(d.complaint, d.p_complaint, 1 - d.p_complaint)),
            needs_reply=d.needs_reply,
            needs_reply_score=label_score(np.where(d.needs_reply, d.p_reply, 1 - d.p_reply)),
            sentiment=_SENTIMENT_NAMES[d.sentiment],
            sentiment_score=label_score(d.sent_conf),
            topic=keys[d.topic_idx],
            topic_score=label_score(d.topic_conf),
            urgency=d.urgency,
            urgency_score=label_score(d.urgency_conf),
            priority=d.priority,
            spam=d.spam,
            spam_score=label_score(np.where(d.spam, d.p_spam, 1 - d.p_spam)),
            pii=detect_pii_joined(joined, starts, list(map(len, texts))),
            language=decide_language(d.feats.sums[:, F.LANG0 : F.N_COLS]),
            explain=partial(self._explain, d, plan, ctx),
        )
        if model is not None and model.models:
            # Brand models were trained on stack features of the text alone over the default taxonomy; this batch's
            # decisions are reused only when they were made the same way.
            text_only = plan is self._default_plan and not (ctx.direct.any() or ctx.in_thread.any())
            stack = self._stack_matrix(d) if text_only else self.stack_features(texts, coded.batch)
            columns = _override(columns, model, texts, coded.batch, stack, d.needs_reply)
        return columns

    def _brand_reasons(
        self, posts: Sequence[PostSignals], joined: str, starts: npt.NDArray[np.int64]
    ) -> dict[int, str]:
        """Per post by the brand itself or retweeting it: why it is no customer contact.

        The exact test (:meth:`_brand_reason`) runs only on posts that a cheap batch test cannot rule out.
        """
        n = len(posts)
        handles = list(map(_HANDLES, posts))
        with_handles = np.fromiter(map(bool, handles), dtype=bool, count=n)
        if not with_handles.any():
            return {}
        known = {h for batch_handles in set(handles) for h in self._handle_set(batch_handles)}
        authors = SEP.join(map(_AUTHOR, posts)).lower().split(SEP)
        if len(authors) != n:  # a handle with a NUL in it
            authors = [post.author_handle.lower() for post in posts]
        candidate = np.fromiter(map(known.__contains__, map(str.lstrip, authors, repeat("@"))), dtype=bool, count=n)
        retweets = [m.start() + 1 for m in _RETWEET_RE.finditer(joined)]
        if retweets:
            candidate[np.searchsorted(starts, retweets, side="right") - 1] = True
        out: dict[int, str] = {}
        for i in np.flatnonzero(candidate & with_handles).tolist():
            reason = self._brand_reason(posts[i])
            if reason:
                out[i] = reason
        return out

    def _explain(self, d: _Decisions, plan: _TopicPlan, ctx: _Context, columns: TriageBatch) -> list[TriageResult]:
        """The results with reasons of a batch decided by the default classifier."""
        n = len(columns)
        enc, feats = d.enc, d.feats
        cols = self.model_cols
        sent_model = np.array([self.sentiment_classes.index(c) for c in SENTIMENTS])[d.sentiment]
        topic_model = plan.model_map[d.topic_idx]
        tasks = MODEL_TASKS
        why_complaint, why_reply, why_sentiment, why_topic = top_terms_per_task(
            enc,
            np.stack(
                [
                    np.full(n, cols["complaint"].start),
                    np.full(n, cols["needs_reply"].start),
                    cols["sentiment"].start + sent_model,
                    np.where(topic_model >= 0, cols["topic"].start + topic_model, -1),
                ]
            ),
            np.stack([np.where(d.complaint, 1.0, -1.0), np.where(d.needs_reply, 1.0, -1.0), np.ones(n), np.ones(n)]),
            [self.model_index[task] for task in tasks],
            prefix="model:",
            min_weight=MODEL_REASON_MIN,
        )
        table = plan.table
        kw_uni, kw_bi = table.rows(feats)
        evidence = Evidence(
            word_hits=self.texts.word_hits(feats),
            topic_hits=keyword_hits(table.index.names, table.matrix, kw_uni, kw_bi, feats.batch.post_of, d.topic_idx),
            why_complaint=why_complaint,
            why_reply=why_reply,
            why_sentiment=why_sentiment,
            why_topic=why_topic,
            brand_reason=ctx.brand_reason,
            question=d.sig.question,
            direct=ctx.direct,
            in_thread=ctx.in_thread,
            praise_only=d.praise_only,
            praise_bonus=d.praise_bonus,
            bang=d.sig.bang,
            shout=d.sig.shout,
            links_only=d.sig.links_only,
            outage=d.sig.outage > 0,
            churn=d.sig.churn > 0,
            parts=d.parts,
            followers=ctx.followers,
            prior=ctx.prior,
        )
        return assemble(columns, evidence)


_SENTIMENT_NAMES = np.array(SENTIMENTS, dtype=object)


def _empty_batch() -> TriageBatch:
    no, none = np.zeros(0, dtype=bool), np.zeros(0)
    names = np.zeros(0, dtype=object)
    return TriageBatch(
        no, none, no, none, names, none, names, none, none, none, np.zeros(0, dtype=np.int64), no, none, [], names,
        explain=lambda _batch: [],
    )


def _override(
    columns: TriageBatch,
    bundle: ModelBundle,
    texts: Sequence[str],
    batch: TokenBatch,
    stack: FloatArray,
    default_reply: BoolArray,
) -> TriageBatch:
    """The columns with the decisions of the tasks a brand bundle has replaced by its models'.

    Priority follows an overridden needs_reply (1 when no reply is needed); see results.override for the reasons.
    """
    enc = bundle.scorer.encode(batch)
    embedding: FloatArray | None = None
    changes: dict[str, Any] = {}
    decisions: list[BrandDecision] = []
    for m, (task, trained) in enumerate(bundle.models.items()):
        if trained.uses_semantic and embedding is None:
            embedding = _embed(texts)
        start, stop = int(bundle.scorer.col0[m]), int(bundle.scorer.col0[m + 1])
        dense = Dense(stack * DENSE_SCALE if trained.uses_stack else None, embedding if trained.uses_semantic else None)
        z = trained.logits_from(enc.logits[:, start:stop], dense, texts)
        proba = trained.proba_from_logits(z)
        pred, column, sign = trained.decision_columns(z)
        names = np.array(trained.classes, dtype=object)[pred]
        values = names == TRUE if task in BINARY_TASKS else names
        # Python's round, as for every brand score so far (numpy rounds halves differently).
        scores = [round(min(p, MAX_SCORE), 3) for p in proba[np.arange(len(pred)), pred].tolist()]
        changes[task] = values
        changes[f"{task}_score"] = np.array(scores)
        why = partial(top_terms, enc, start + column, sign, m, prefix="brand model:", top=BRAND_REASON_WORDS)
        decisions.append(BrandDecision(task, values.tolist(), scores, why))
    if "needs_reply" in changes:
        needs = changes["needs_reply"]
        changed = needs != default_reply
        changes["priority"] = np.where(changed, priority_of(needs, columns.urgency), columns.priority)
    priority = changes.get("priority", columns.priority).tolist()
    return replace(columns, **changes, explain=partial(_brand_results, columns, decisions, priority))


def _brand_results(
    default: TriageBatch, decisions: list[BrandDecision], priority: list[int], _batch: TriageBatch
) -> list[TriageResult]:
    return override(default.results(), decisions, priority)


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


def classify_batch(
    posts: Sequence[PostSignals], topics: Taxonomy | None = None, model: ModelBundle | None = None
) -> TriageBatch:
    """Triage a batch of posts as columns (decisions and scores); see :class:`TriageBatch`. The same decisions as
    :func:`classify`, whose reasons and result objects it builds only when a result is asked for."""
    return default_engine().classify_batch(posts, topics, model)


def classify_one(
    post: PostSignals, topics: Taxonomy | None = None, model: ModelBundle | None = None
) -> TriageResult:
    """Triage one post; the same result as ``classify([post])[0]``."""
    return default_engine().classify([post], topics, model)[0]


def _default_stack_features(texts: Sequence[str], batch: TokenBatch | None) -> FloatArray:
    return default_engine().stack_features(texts, batch)


# A stacked TrainedModel predicting on its own (``model.predict(texts)``) needs the shipped engine's features; see
# model.bundle.set_stack_features for why the engine is handed over instead of imported there.
model_bundle.set_stack_features(_default_stack_features)
