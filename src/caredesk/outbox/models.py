from __future__ import annotations

from django.conf import settings
from django.db import models


class Reply(models.Model):
    """An outbound reply: queued, then sent exactly once or visibly failed, or, when a send was interrupted and
    the platform cannot say whether it went out, *delivery unknown* until an agent decides.

    ``idempotency_key`` is unique: a double click, a retried request or a retried job finds the same row instead of
    sending twice; providers that accept an idempotency header (Mastodon) get it too.
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        UNKNOWN = "unknown", "delivery unknown"  # never sent again by itself: an agent decides
        DISCARDED = "discarded"

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="replies")
    in_reply_to = models.ForeignKey("cases.Post", on_delete=models.PROTECT, related_name="replies")
    installation = models.ForeignKey("connectors.ConnectorInstallation", on_delete=models.PROTECT)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="replies")
    text = models.TextField()
    is_direct = models.BooleanField(default=False)
    idempotency_key = models.CharField(max_length=80, unique=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    external_id = models.CharField(max_length=200, blank=True, default="")
    post = models.OneToOneField(
        "cases.Post", null=True, blank=True, on_delete=models.SET_NULL, related_name="sent_reply"
    )
    created_at = models.DateTimeField()
    # When the reply entered its state: a reply queued or sending for longer than the lease is settled by the
    # sweeper (outbox.tasks.sweep_replies).
    state_since = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["installation", "external_id"], name="reply_external_idx"),
            models.Index(fields=["state", "state_since"], name="reply_state_idx"),
        ]

    def __str__(self) -> str:
        return f"reply #{self.pk} ({self.state})"
