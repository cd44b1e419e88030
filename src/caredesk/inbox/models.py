from __future__ import annotations

from django.conf import settings
from django.db import models


class CannedReply(models.Model):
    """A saved answer an agent can drop into the reply box ("Can I help?")."""

    brand = models.ForeignKey(
        "accounts.Brand", null=True, blank=True, on_delete=models.CASCADE, related_name="canned_replies"
    )
    title = models.CharField(max_length=80)
    text = models.TextField()

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class CasePresence(models.Model):
    """Who is looking at or typing into a case right now; refreshed by heartbeats, stale after a few seconds."""

    class Mode(models.TextChoices):
        VIEWING = "viewing"
        REPLYING = "replying"

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="presence")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.VIEWING)
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "user"], name="presence_unique")]

    def __str__(self) -> str:
        return f"user {self.user_id} {self.mode} case {self.case_id}"
