"""What the desk learns from its agents: label corrections, and the per-brand models trained from them.

The rest of the triage package is pure (no Django); only this module, ``actions.py`` and ``brand_models.py`` touch
the database.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from caredesk.triage import vocabulary
from caredesk.triage.rules.topics import DEFAULT_TOPICS


class Task(models.TextChoices):
    """The labels an agent can correct and a brand model can learn: the tasks of :mod:`caredesk.triage.vocabulary`,
    as Django choices (the values come from there; a test checks the two lists are equal)."""

    COMPLAINT = vocabulary.COMPLAINT
    NEEDS_REPLY = vocabulary.NEEDS_REPLY
    SENTIMENT = vocabulary.SENTIMENT
    TOPIC = vocabulary.TOPIC
    SPAM = vocabulary.SPAM


def get_brand_topics(brand_id: int) -> tuple[str, ...]:
    """The topic keys a brand's posts may carry. Every brand uses the default taxonomy for now; a brand's own
    taxonomy will be stored beside these models, which is why this lives here (actions and brand_models both ask)."""
    return tuple(DEFAULT_TOPICS)


def label_as_text(value: Any) -> str:
    """A stored triage value as a correction string: booleans become ``"true"``/``"false"``."""
    if isinstance(value, bool):
        return vocabulary.TRUE if value else vocabulary.FALSE
    return "" if value is None else str(value)


class LabelCorrection(models.Model):
    """An agent's verdict on one label of one post. A later correction of the same label replaces the earlier one.

    ``value`` is a string whatever the task: ``"true"``/``"false"`` for yes/no tasks, a sentiment, a topic key.
    ``previous_value`` is what triage had said before any agent touched the label.
    """

    brand = models.ForeignKey("accounts.Brand", on_delete=models.CASCADE, related_name="label_corrections")
    post = models.ForeignKey("cases.Post", on_delete=models.CASCADE, related_name="label_corrections")
    task = models.CharField(max_length=20, choices=Task.choices)
    value = models.CharField(max_length=40)
    previous_value = models.CharField(max_length=40, blank=True, default="")
    # Corrections are training data: they outlive the account of the agent who made them.
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="label_corrections"
    )
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["post", "task"], name="label_correction_unique_per_post_task"),
        ]
        indexes = [models.Index(fields=["brand", "task"], name="label_correction_brand_idx")]

    def __str__(self) -> str:
        return f"{self.task}={self.value} on post {self.post_id}"


class BrandTriageModel(models.Model):
    """A triage model bundle trained for one brand. Rows are kept as history; at most one per brand is active."""

    brand = models.ForeignKey("accounts.Brand", on_delete=models.CASCADE, related_name="triage_models")
    # ``ModelBundle.to_bytes()``; read back with ``ModelBundle.from_bytes``.
    bundle = models.BinaryField()
    tasks = models.JSONField(default=list, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    n_examples = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    active = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["brand"], condition=Q(active=True), name="brand_triage_model_one_active"
            ),
        ]
        indexes = [models.Index(fields=["brand", "-created_at"], name="brand_triage_model_brand_idx")]

    def __str__(self) -> str:
        state = "active" if self.active else "inactive"
        return f"triage model #{self.pk} of brand {self.brand_id} ({state})"
