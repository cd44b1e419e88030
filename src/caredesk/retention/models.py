from __future__ import annotations

from django.db import models


class RetentionRun(models.Model):
    """One application of a brand's retention policy: what it removed, and where it stands.

    A run works in batches, each its own transaction, and records its position (the last case it handled, by
    ``updated_at`` then id) after each one: a run interrupted (the worker stopped, a deploy) is taken up where it
    stopped by the next, with the same cutoff. The finished runs are the brand's retention report.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Phase(models.TextChoices):
        CASES = "cases"  # closed cases untouched since the cutoff: their posts, replies, subject
        POSTS = "posts"  # posts outside any case
        PAYLOADS = "payloads"  # raw deliveries (never pending ones)
        FINISHED = "finished"

    brand = models.ForeignKey("accounts.Brand", on_delete=models.CASCADE, related_name="retention_runs")
    action = models.CharField(max_length=10)  # the brand's retention_action when the run began
    days = models.PositiveIntegerField()
    cutoff = models.DateTimeField()  # content older than this goes
    # Cases last changed before this were handled by an earlier run of the same policy (None: look at them all).
    since = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    phase = models.CharField(max_length=10, choices=Phase.choices, default=Phase.CASES)
    position_at = models.DateTimeField(null=True, blank=True)
    position_id = models.BigIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    batches = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["brand", "-started_at"], name="retention_run_brand_idx")]
        constraints = [
            # At most one run of a brand in progress: a second worker resumes it rather than starting another.
            models.UniqueConstraint(fields=["brand"], condition=models.Q(status="running"),
                                    name="retention_one_running_per_brand"),
        ]

    def __str__(self) -> str:
        return f"retention run #{self.pk} of brand {self.brand_id} ({self.status})"

    def summary(self) -> str:
        shown = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(self.counts.items()) if v) or "nothing"
        return f"{self.action} after {self.days} days (before {self.cutoff:%Y-%m-%d %H:%M} UTC): {shown}"
