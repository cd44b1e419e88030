"""Writes for learning from agents: label corrections and per-brand triage models.

Like every actions module, these never open or commit a transaction: the request or job that calls them owns it.
They record Activity rows and publish them with :func:`caredesk.cases.events.publish_activities`, which only fires
after commit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from caredesk.accounts.models import Brand
from caredesk.cases.actions import CaseActionError, do_set_case_labels, lock_case
from caredesk.cases.events import publish_activities
from caredesk.cases.models import Activity, Post
from caredesk.triage.models import BrandTriageModel, LabelCorrection, Task, get_brand_topics, label_as_text
from caredesk.triage.rules.topics import FALLBACK_TOPIC
from caredesk.triage.vocabulary import BINARY_TASKS, FALSE, SENTIMENTS, TRUE

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from caredesk.triage.model.bundle import ModelBundle

# Longest value a correction can hold (the model field's max_length).
MAX_VALUE_LENGTH = 40


class LabelCorrectionError(CaseActionError):
    """A correction that cannot be stored; the message is shown to the agent (or API caller) as is."""


# ---------------------------------------------------------------------------------------------------------------
# Checks


def check_label_value(brand_id: int, task: str, value: str) -> str:
    """The canonical form of ``value`` for ``task``, or LabelCorrectionError saying what would be accepted."""
    if task not in Task.values:
        raise LabelCorrectionError(f"unknown label {task!r}; use one of {', '.join(Task.values)}")
    text = value.strip().lower() if isinstance(value, str) else ""
    if task in BINARY_TASKS:
        if text not in (TRUE, FALSE):
            raise LabelCorrectionError(f"{task} must be 'true' or 'false', not {value!r}")
    elif task == Task.SENTIMENT:
        if text not in SENTIMENTS:
            raise LabelCorrectionError(f"sentiment must be one of {', '.join(SENTIMENTS)}, not {value!r}")
    else:
        topics = get_brand_topics(brand_id)
        if text not in topics:
            raise LabelCorrectionError(f"unknown topic {value!r}; use one of {', '.join(topics)}")
    return text


def lock_post(post_id: int) -> Post | None:
    """The post with its case (if any) and then its own row locked for the rest of the caller's transaction.

    None when there is no such post. The case is locked first, as every case write does, so a correction and an
    agent's reply or an ingest batch on the same case queue up instead of deadlocking.
    """
    row = Post.objects.filter(pk=post_id).values("case_id").first()
    if row is None:
        return None
    if row["case_id"] is not None:
        try:
            lock_case(row["case_id"])
        except CaseActionError:
            pass  # the case went away in between; the post's case is SET_NULL and read fresh below
    return (
        Post.objects.select_for_update(of=("self",))
        .select_related("installation", "case")
        .filter(pk=post_id)
        .first()
    )


def _case_value(task: str, values: Sequence[Any]) -> Any:
    """What a case's label adds up to from its inbound posts' labels (oldest first), as ingest merges them."""
    if task == Task.SENTIMENT:
        return values[-1]
    if task == Task.NEEDS_REPLY:
        return any(bool(v) for v in values)
    topics = [v for v in values if v]
    named = [v for v in topics if v != FALLBACK_TOPIC]
    return named[-1] if named else (topics[0] if topics else "")


def _follow_on_case(post: Post, task: str, before: Any, after: Any, agent: User | None, now: datetime) -> None:
    """Carry a corrected post label over to the case when it changes what the case's posts add up to.

    A case shows the latest sentiment, the latest specific topic and "needs reply" if any post needs one. Comparing
    the merge before and after the correction (rather than copying the value) leaves a case alone when another
    post decides its label, and keeps a label an agent set on the case by hand unless this correction moves it.
    """
    case = post.case
    if case is None or task not in (Task.TOPIC, Task.SENTIMENT, Task.NEEDS_REPLY):
        return
    rows = list(
        case.posts.filter(direction=Post.Direction.INBOUND).order_by("created_at", "pk").values_list("pk", "triage")
    )
    old_values, new_values = [], []
    for pk, triage in rows:
        if pk == post.pk:
            old_values.append(before)
            new_values.append(after)
            continue
        label = triage.get(task) if isinstance(triage, Mapping) else None
        value = label.get("value") if isinstance(label, Mapping) else None
        old_values.append(value)
        new_values.append(value)
    if not new_values:
        return
    derived = _case_value(task, new_values)
    if derived == _case_value(task, old_values):
        return
    if task == Task.TOPIC:
        do_set_case_labels(case, agent, now, topic=str(derived))
    elif task == Task.SENTIMENT:
        do_set_case_labels(case, agent, now, sentiment=str(derived))
    else:
        do_set_case_labels(case, agent, now, needs_reply=bool(derived))


# ---------------------------------------------------------------------------------------------------------------
# Writes


def do_correct_label(post: Post, task: str, value: str, agent: User | None, now: datetime) -> LabelCorrection:
    """Store an agent's correction of one triage label of a customer post, and show it everywhere.

    The post's stored triage JSON takes the corrected value (score 1.0, reason "corrected by <agent>"); its case
    follows for topic, sentiment and needs reply where the post decides the case's label. Records a
    ``label_corrected`` activity, published after commit. Correcting a label to the value it already has is
    stored too (a confirmed label is training data as well), but the same correction twice changes nothing.

    Precondition: the post row (and its case row) locked in the caller's transaction, see :func:`lock_post`.
    """
    if post.direction != Post.Direction.INBOUND:
        raise LabelCorrectionError("only customer posts have triage labels to correct")
    brand_id = post.installation.brand_id
    value = check_label_value(brand_id, task, value)
    triage = dict(post.triage) if isinstance(post.triage, Mapping) else {}
    current = triage.get(task)
    shown = current.get("value") if isinstance(current, Mapping) else None
    shown_text = label_as_text(shown)

    existing = LabelCorrection.objects.filter(post=post, task=task).first()
    if existing is not None and existing.value == value and shown_text == value:
        return existing
    if existing is None:
        correction = LabelCorrection.objects.create(
            brand_id=brand_id, post=post, task=task, value=value, previous_value=shown_text[:MAX_VALUE_LENGTH],
            agent=agent, created_at=now,
        )
    else:
        # previous_value stays what triage said: the earlier correction is replaced, not stacked.
        correction = existing
        correction.value, correction.agent, correction.created_at = value, agent, now
        correction.save(update_fields=["value", "agent", "created_at"])

    typed: Any = value == TRUE if task in BINARY_TASKS else value
    who = agent.get_username() if agent is not None else "an agent"
    triage[task] = {"value": typed, "score": 1.0, "reasons": [f"corrected by {who}"], "corrected_by": who}
    post.triage = triage
    post.save(update_fields=["triage"])

    activity = Activity.objects.create(
        kind=Activity.Kind.LABEL_CORRECTED, brand_id=brand_id, case_id=post.case_id, actor=agent, created_at=now,
        data={"post_id": post.pk, "task": task, "value": value, "previous": shown_text},
    )
    publish_activities([activity.pk])
    _follow_on_case(post, task, shown, typed, agent, now)
    return correction


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics as plain JSON: training reports numpy numbers, which the JSON column cannot encode."""

    def plain(value: Any) -> Any:
        tolist = getattr(value, "tolist", None)  # numpy scalars and arrays alike
        return tolist() if callable(tolist) else str(value)

    result: dict[str, Any] = json.loads(json.dumps(metrics, default=plain))
    return result


def do_store_brand_model(
    brand: Brand, bundle: ModelBundle, metrics: Mapping[str, Any] | None, n_examples: int, now: datetime
) -> BrandTriageModel:
    """Store a trained bundle as the brand's active triage model; the one active before stays as history.

    Locks the brand row so two trainings finishing together activate one after the other.
    """
    Brand.objects.select_for_update().filter(pk=brand.pk).first()
    BrandTriageModel.objects.filter(brand=brand, active=True).update(active=False)
    return BrandTriageModel.objects.create(
        brand=brand,
        bundle=bundle.to_bytes(),
        tasks=sorted(bundle.models),
        metrics=_jsonable(dict(metrics or {})),
        n_examples=max(int(n_examples), 0),
        created_at=now,
        active=True,
    )

