"""Triage results: the columnar :class:`TriageBatch`, and the per-post :class:`TriageResult` objects with reasons.

Deciding is vectorised (classifier.py); a caller that only needs the decisions and scores reads a batch's columns.
Reasons are strings per post, so building them and the result objects is the one per-post Python loop left; it
runs when a result is first asked for, for the whole batch, and works on plain lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from caredesk.triage.rules import features as F
from caredesk.triage.rules.reasons import MAX_WORD_REASONS, NEG, NO_HITS, POS, Hits, followers, quote
from caredesk.triage.types import Label, PIIMatch, TriageResult, make_labels, make_results

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
ObjectArray = npt.NDArray[np.object_]

MAX_SCORE = 0.99
URGENT, HIGH = 0.75, 0.5


def label_score(x: FloatArray) -> FloatArray:
    """A label's score: capped below 1 (neither a lexicon nor a small model is ever certain), 3 decimals."""
    return cast(FloatArray, np.round(np.clip(x, 0.0, MAX_SCORE), 3))


def priority_of(needs_reply: BoolArray, urgency: FloatArray) -> IntArray:
    """1 low .. 4 urgent: 1 when no reply is needed, else by urgency."""
    out: IntArray = np.where(~needs_reply, 1, np.where(urgency >= URGENT, 4, np.where(urgency >= HIGH, 3, 2)))
    return out


@dataclass(frozen=True, slots=True, eq=False)
class TriageBatch:
    """Triage of a batch of posts as columns, one entry per post in order.

    Each column holds what the matching field of :class:`TriageResult` holds: ``complaint`` is
    ``result.complaint.value`` and ``complaint_score`` is ``result.complaint.score`` (the confidence of the decided
    value), and so on. ``batch[i]`` and iteration give the very results that ``classify`` returns; the first such
    access builds the reasons and results of the whole batch and keeps them. Until then a batch holds the per-token
    evidence that reasons are made from (a few kB per post), so keep the columns, not the batch, for long.
    """

    complaint: BoolArray
    complaint_score: FloatArray
    needs_reply: BoolArray
    needs_reply_score: FloatArray
    sentiment: ObjectArray  # "negative" | "neutral" | "positive"
    sentiment_score: FloatArray
    topic: ObjectArray  # taxonomy keys
    topic_score: FloatArray
    urgency: FloatArray
    urgency_score: FloatArray
    priority: IntArray
    spam: BoolArray
    spam_score: FloatArray
    pii: list[tuple[PIIMatch, ...]]
    language: ObjectArray
    explain: Callable[[TriageBatch], list[TriageResult]] = field(repr=False)  # builds the results, called once
    _results: list[TriageResult] = field(default_factory=list, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.priority)

    def __getitem__(self, i: int) -> TriageResult:
        return self._built()[i]

    def __iter__(self) -> Iterator[TriageResult]:
        return iter(self._built())

    def results(self) -> list[TriageResult]:
        """Every post's full result, reasons included (built on first use), as a new list."""
        return list(self._built())

    def _built(self) -> list[TriageResult]:
        if len(self._results) != len(self):
            # One slice assignment of a finished list: a thread that looks at the same time sees all of it or none.
            self._results[:] = self.explain(self)
        return self._results


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the reasons of a batch are made of: rule hits, model terms and the rule flags behind each decision."""

    word_hits: dict[int, Hits]
    topic_hits: dict[int, list[str]]
    why_complaint: list[str | None]  # model terms per post (None: none worth naming)
    why_reply: list[str | None]
    why_sentiment: list[str | None]
    why_topic: list[str | None]
    brand_reason: dict[int, str]
    question: BoolArray
    direct: BoolArray
    in_thread: BoolArray
    praise_only: BoolArray
    praise_bonus: BoolArray
    bang: BoolArray
    shout: BoolArray
    links_only: BoolArray
    outage: BoolArray
    churn: BoolArray
    parts: FloatArray  # (n, 8) urgency pieces, see classifier.Engine._decide
    followers: FloatArray
    prior: FloatArray


def assemble(columns: TriageBatch, ev: Evidence) -> list[TriageResult]:
    """The results of a batch decided by the default classifier, from its columns and evidence."""
    n = len(columns)
    hits = [ev.word_hits.get(i, NO_HITS) for i in range(n)]
    complaint = columns.complaint.tolist()
    sentiment = columns.sentiment.tolist()
    spam = columns.spam.tolist()
    return make_results(
        make_labels(complaint, columns.complaint_score.tolist(), _complaint_reasons(ev, hits, complaint, sentiment)),
        make_labels(
            columns.needs_reply.tolist(), columns.needs_reply_score.tolist(),
            _reply_reasons(columns, ev, hits, complaint, spam),
        ),
        make_labels(sentiment, columns.sentiment_score.tolist(), _sentiment_reasons(ev, hits, sentiment)),
        make_labels(columns.topic.tolist(), columns.topic_score.tolist(), _topic_reasons(columns, ev, hits)),
        make_labels(columns.urgency.tolist(), columns.urgency_score.tolist(), _urgency_reasons(ev, hits)),
        columns.priority.tolist(),
        make_labels(spam, columns.spam_score.tolist(), _spam_reasons(ev, hits, spam)),
        columns.pii,
        columns.language.tolist(),
    )


def _with_model(why: list[str], model: str | None) -> tuple[str, ...]:
    return (*why, model) if model is not None else tuple(why)


def _complaint_reasons(
    ev: Evidence, hits: list[Hits], complaint: list[bool], sentiment: list[str]
) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    empty: list[str] = []
    for post_hits, is_complaint, sent, model in zip(hits, complaint, sentiment, ev.why_complaint, strict=True):
        why = post_hits.get(F.COMPLAINT, empty)
        if is_complaint and not why:
            why = post_hits.get(NEG, empty)
        elif not is_complaint and sent == "positive":
            why = post_hits.get(POS, empty)
        out.append(_with_model(why[:MAX_WORD_REASONS], model))
    return out


def _sentiment_reasons(ev: Evidence, hits: list[Hits], sentiment: list[str]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    empty: list[str] = []
    for post_hits, sent, bang, shout, model in zip(
        hits, sentiment, ev.bang.tolist(), ev.shout.tolist(), ev.why_sentiment, strict=True
    ):
        if sent == "neutral":
            why = empty
        else:
            why = post_hits.get(NEG if sent == "negative" else POS, empty)[:MAX_WORD_REASONS]
            if bang:
                why.append("rule: '!!!'")
            if shout:
                why.append("rule: ALL CAPS")
        out.append(_with_model(why, model))
    return out


def _reply_reasons(
    columns: TriageBatch, ev: Evidence, hits: list[Hits], complaint: list[bool], spam: list[bool]
) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    empty: list[str] = []
    for post_hits, needs, is_complaint, is_spam, question, direct, thread, praise, model in zip(
        hits, columns.needs_reply.tolist(), complaint, spam, ev.question.tolist(), ev.direct.tolist(),
        ev.in_thread.tolist(), ev.praise_only.tolist(), ev.why_reply, strict=True,
    ):
        if needs:
            why = ["rule: complaint"] if is_complaint else []
            if question:
                why.append("rule: question")
            why.extend(post_hits.get(F.REQUEST, empty)[:MAX_WORD_REASONS])
            if direct:
                why.append("rule: direct message")
            if thread:
                why.append("rule: reply in a thread")
        elif is_spam:
            why = ["rule: spam"]
        elif praise:
            why = ["rule: praise only"]
        else:
            why = ["rule: no complaint, question or request"]
        out.append(_with_model(why, model))
    return out


def _topic_reasons(columns: TriageBatch, ev: Evidence, hits: list[Hits]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    empty: list[str] = []
    topic_hits = ev.topic_hits
    for i, (post_hits, key, praise, question, outage, churn, model) in enumerate(
        zip(
            hits, columns.topic.tolist(), ev.praise_bonus.tolist(), ev.question.tolist(), ev.outage.tolist(),
            ev.churn.tolist(), ev.why_topic, strict=True,
        )
    ):
        why = topic_hits.get(i, empty)
        if key == "praise" and praise:
            why = [*why, "rule: positive, no complaint"]
        elif key == "question" and question:
            why = [*why, "rule: question"]
        elif key == "outage" and outage:
            why = [*why, f"rule: outage ({quote(post_hits.get(F.OUTAGE, empty))})"]
        elif key == "cancellation" and churn:
            why = [*why, f"rule: churn threat ({quote(post_hits.get(F.CHURN, empty))})"]
        out.append(_with_model(why, model))
    return out


def _urgency_reasons(ev: Evidence, hits: list[Hits]) -> list[tuple[str, ...]]:
    n = len(hits)
    out: list[tuple[str, ...]] = [()] * n
    empty: list[str] = []
    rows = np.flatnonzero((ev.parts[:, 1:] > 0).any(axis=1))
    for i, (_, outage, churn, safety, audience, verified, repeat, negative), followers_n, prior in zip(
        rows.tolist(), ev.parts[rows].tolist(), ev.followers[rows].tolist(), ev.prior[rows].tolist(), strict=True
    ):
        post_hits = hits[i]
        why: list[str] = []
        if outage:
            why.append(f"rule: outage ({quote(post_hits.get(F.OUTAGE, empty))})")
        if churn:
            why.append(f"rule: churn threat ({quote(post_hits.get(F.CHURN, empty))})")
        if safety:
            why.append(f"rule: safety, fraud or vulnerable customer ({quote(post_hits.get(F.SAFETY, empty))})")
        if audience:
            why.append(f"rule: {followers(followers_n)} followers")
        if verified:
            why.append("rule: verified author")
        if repeat:
            why.append(f"rule: {int(prior)} earlier contacts")
        if negative:
            why.append("rule: strong negative")
        out[i] = tuple(why)
    return out


def _spam_reasons(ev: Evidence, hits: list[Hits], spam: list[bool]) -> list[tuple[str, ...]]:
    n = len(hits)
    out: list[tuple[str, ...]] = [()] * n
    links_only = ev.links_only
    for i in np.flatnonzero(spam).tolist():
        reason = ev.brand_reason.get(i)
        if reason:
            out[i] = (reason,)
            continue
        why = hits[i].get(F.SPAM, [])[:MAX_WORD_REASONS]
        if links_only[i]:
            why.append("rule: links only")
        out[i] = tuple(why)
    return out


@dataclass(frozen=True, slots=True)
class BrandDecision:
    """One task decided by a brand model: its values and scores per post, and the model terms behind them."""

    task: str
    values: list[Any]
    scores: list[float]
    why: Callable[[], list[str | None]]  # "brand model: +'word' ..." per post, built when asked for


def override(
    results: list[TriageResult], decisions: list[BrandDecision], priority: list[int]
) -> list[TriageResult]:
    """Replace the labels of the tasks a brand model decided (reasons: "brand model: +'word'").

    The default reasons are kept after the brand model's when both agree on the value; ``priority`` is the final
    priority per post.
    """
    new: dict[str, list[Label]] = {}
    for decision in decisions:
        reasons: list[tuple[str, ...]] = []
        for result, value, why in zip(results, decision.values, decision.why(), strict=True):
            old: Label = getattr(result, decision.task)
            found: tuple[str, ...] = (why,) if why else ("brand model",)
            if old.value == value:
                found = found + tuple(x for x in old.reasons if not x.startswith("model:"))
            reasons.append(found)
        new[decision.task] = make_labels(decision.values, decision.scores, reasons)

    def labels_of(task: str) -> list[Any]:
        return new[task] if task in new else [getattr(r, task) for r in results]

    return make_results(
        labels_of("complaint"), labels_of("needs_reply"), labels_of("sentiment"), labels_of("topic"),
        labels_of("urgency"), priority, labels_of("spam"), [r.pii for r in results], [r.language for r in results],
    )
