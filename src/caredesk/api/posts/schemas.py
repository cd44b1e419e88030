from __future__ import annotations

from typing import Annotated, Any

from ninja import Field, Schema
from pydantic import StringConstraints, field_validator

from caredesk.api.schemas import Text, UTCDateTime
from caredesk.triage.models import Task


class LabelIn(Schema):
    """One corrected label. A later correction of the same label replaces the earlier one."""

    task: Task = Field(description="Which label: " + ", ".join(Task.values) + ".")
    value: Annotated[Text, StringConstraints(max_length=40)] | bool = Field(
        description="`true`/`false` (or a JSON boolean) for complaint, needs_reply and spam; "
        "`negative`, `neutral` or `positive` for sentiment; a topic key of the brand's taxonomy for topic."
    )

    @field_validator("value", mode="after")
    @classmethod
    def _as_text(cls, value: str | bool) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return value


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
