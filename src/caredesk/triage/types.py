"""The triage interface the rest of caredesk relies on. Implementations may change; these types do not."""

from __future__ import annotations

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
