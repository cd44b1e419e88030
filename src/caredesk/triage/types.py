"""The triage interface the rest of caredesk relies on. Implementations may change; these types do not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class PostSignals:
    """What triage knows about one post besides its text. All fields are optional context."""

    text: str
    author_followers: int = 0
    author_verified: bool = False
    is_direct: bool = False
    is_reply: bool = False
    # How many earlier inbound posts this customer sent in the recent past (repeated contact raises urgency).
    prior_contacts: int = 0
    # Handles (without @) of the brand's own accounts, to recognise the brand's posts and retweets.
    brand_handles: tuple[str, ...] = ()
    author_handle: str = ""


@dataclass(frozen=True, slots=True)
class Label:
    """One decision with its score (0..1, confidence of ``value``) and the evidence that decided it."""

    value: Any
    score: float
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PIIMatch:
    kind: str  # account_number | phone | email | address | card
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class TriageResult:
    complaint: Label
    needs_reply: Label
    sentiment: Label  # value: "negative" | "neutral" | "positive"
    topic: Label  # value: one of the brand taxonomy keys
    urgency: Label  # value: float 0..1
    priority: int  # 1 low .. 4 urgent, derived from urgency and needs_reply
    spam: Label
    pii: tuple[PIIMatch, ...] = field(default_factory=tuple)
    language: str = ""

    def as_dict(self) -> dict[str, Any]:
        # Written out rather than dataclasses.asdict, whose recursive deep copy dominated batch ingest.
        def label(item: Label) -> dict[str, Any]:
            return {"value": item.value, "score": item.score, "reasons": list(item.reasons)}

        return {
            "complaint": label(self.complaint),
            "needs_reply": label(self.needs_reply),
            "sentiment": label(self.sentiment),
            "topic": label(self.topic),
            "urgency": label(self.urgency),
            "priority": self.priority,
            "spam": label(self.spam),
            "pii": [{"kind": m.kind, "start": m.start, "end": m.end} for m in self.pii],
            "language": self.language,
        }



# Batch triage builds several of these per post. A frozen dataclass's __init__ sets each field through
# object.__setattr__, which made construction the largest cost of assembling results; writing the slots directly
# gives equal objects in about half the time.
_new = object.__new__


def _setter(cls: type, field_name: str) -> Any:
    return cls.__dict__[field_name].__set__


_LABEL_VALUE, _LABEL_SCORE, _LABEL_REASONS = _setter(Label, "value"), _setter(Label, "score"), _setter(Label, "reasons")
_PII_KIND, _PII_START, _PII_END = _setter(PIIMatch, "kind"), _setter(PIIMatch, "start"), _setter(PIIMatch, "end")
_RESULT_COMPLAINT = _setter(TriageResult, "complaint")
_RESULT_NEEDS_REPLY = _setter(TriageResult, "needs_reply")
_RESULT_SENTIMENT = _setter(TriageResult, "sentiment")
_RESULT_TOPIC = _setter(TriageResult, "topic")
_RESULT_URGENCY = _setter(TriageResult, "urgency")
_RESULT_PRIORITY = _setter(TriageResult, "priority")
_RESULT_SPAM = _setter(TriageResult, "spam")
_RESULT_PII = _setter(TriageResult, "pii")
_RESULT_LANGUAGE = _setter(TriageResult, "language")


def make_pii_match(kind: str, start: int, end: int) -> PIIMatch:
    """``PIIMatch(kind, start, end)``, built faster."""
    match: PIIMatch = _new(PIIMatch)
    _PII_KIND(match, kind)
    _PII_START(match, start)
    _PII_END(match, end)
    return match


def make_labels(values: Sequence[Any], scores: Sequence[float], reasons: Sequence[tuple[str, ...]]) -> list[Label]:
    """``Label(v, s, r)`` for each (v, s, r), built faster. Labels without reasons recur (spam: false, 0.9), so
    one is made per distinct (value, score)."""
    plain: dict[tuple[Any, float], Label] = {}
    out: list[Label] = []
    append = out.append
    for value, score, why in zip(values, scores, reasons, strict=True):
        if not why:
            label = plain.get((value, score))
            if label is not None:
                append(label)
                continue
        label = _new(Label)
        _LABEL_VALUE(label, value)
        _LABEL_SCORE(label, score)
        _LABEL_REASONS(label, why)
        if not why:
            plain[(value, score)] = label
        append(label)
    return out


def make_results(
    complaint: Sequence[Label],
    needs_reply: Sequence[Label],
    sentiment: Sequence[Label],
    topic: Sequence[Label],
    urgency: Sequence[Label],
    priority: Sequence[int],
    spam: Sequence[Label],
    pii: Sequence[tuple[PIIMatch, ...]],
    language: Sequence[str],
) -> list[TriageResult]:
    """``TriageResult(...)`` per post from one sequence per field, built faster."""
    out: list[TriageResult] = []
    append = out.append
    for fields in zip(complaint, needs_reply, sentiment, topic, urgency, priority, spam, pii, language, strict=True):
        result = _new(TriageResult)
        _RESULT_COMPLAINT(result, fields[0])
        _RESULT_NEEDS_REPLY(result, fields[1])
        _RESULT_SENTIMENT(result, fields[2])
        _RESULT_TOPIC(result, fields[3])
        _RESULT_URGENCY(result, fields[4])
        _RESULT_PRIORITY(result, fields[5])
        _RESULT_SPAM(result, fields[6])
        _RESULT_PII(result, fields[7])
        _RESULT_LANGUAGE(result, fields[8])
        append(result)
    return out
