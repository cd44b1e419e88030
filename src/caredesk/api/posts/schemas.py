from __future__ import annotations

from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import PlainValidator, StringConstraints, WithJsonSchema

from caredesk.api.schemas import BodyIn, Text, UTCDateTime
from caredesk.triage.models import Task


def _boolean_label(value: Any) -> str:
    if value is True or value == "true":
        return "true"
    if value is False or value == "false":
        return "false"
    raise ValueError("must be true or false (a JSON boolean or that text)")


# Stored as text, as the other labels are; one validator, so a wrong value gets one message rather than one per
# member of a union.
BooleanLabelValue = Annotated[
    str,
    PlainValidator(_boolean_label),
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["true", "false"]}]}),
]


class BooleanLabelIn(BodyIn):
    task: Literal["complaint", "needs_reply", "spam"]
    value: BooleanLabelValue = Field(description="A JSON boolean, or `true`/`false` as text.")


class SentimentLabelIn(BodyIn):
    task: Literal["sentiment"]
    value: Literal["negative", "neutral", "positive"]


class TopicLabelIn(BodyIn):
    task: Literal["topic"]
    value: Annotated[Text, StringConstraints(min_length=1, max_length=40)] = Field(
        description="A topic key of the brand's taxonomy, e.g. `billing`."
    )


# One corrected label; a later correction of the same label replaces the earlier one. The task decides which
# values are valid, and the schema says so (a "oneOf" on ``task``), so a client learns it before sending: only
# the topic keys, which each brand sets, are checked against the database.
LabelIn = Annotated[BooleanLabelIn | SentimentLabelIn | TopicLabelIn, Field(discriminator="task")]


class LabelOut(Schema):
    value: Any = Field(description="A boolean, a sentiment or a topic key.")
    score: float | None = Field(None, description="Confidence 0..1; 1.0 when an agent set the label.")
    reasons: list[str] = Field(default_factory=list)
    corrected_by: str | None = Field(None, description="Username of the agent who set the label by hand.")


class CorrectionOut(Schema):
    task: Task
    value: str
    previous_value: str = Field(description="What triage had said before any agent corrected it.")
    agent: str | None = Field(description="Username.")
    created_at: UTCDateTime


class PostLabelsOut(Schema):
    post_id: int
    case_id: int | None
    labels: dict[str, LabelOut] = Field(description="The post's correctable labels as they stand now, by task.")
    corrections: list[CorrectionOut] = Field(description="Labels agents have corrected on this post.")


def labels_of(triage: Any) -> dict[str, dict[str, Any]]:
    """The correctable labels of a post's stored triage JSON (labels it lacks are left out)."""
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(triage, dict):
        return out
    for task in Task.values:
        label = triage.get(task)
        if isinstance(label, dict):
            score = label.get("score")
            out[task] = {
                "value": label.get("value"),
                "score": float(score) if isinstance(score, int | float) else None,
                "reasons": [str(r) for r in label.get("reasons") or ()],
                "corrected_by": label.get("corrected_by") or None,
            }
    return out
