from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import JSONField, Value

from caredesk.connectors.crypto import decrypt_json, encrypt_json


class ConnectorInstallation(models.Model):
    """One configured use of a provider for a brand: its config, encrypted credentials, cursor and health.

    The provider (code) is found by ``provider_key`` in the connector registry.
    """

    class Health(models.TextChoices):
        OK = "ok"
        DEGRADED = "degraded"
        FAILING = "failing"
        UNKNOWN = "unknown"

    brand = models.ForeignKey("accounts.Brand", on_delete=models.CASCADE, related_name="installations")
    provider_key = models.CharField(max_length=40)
    name = models.CharField(max_length=120)
    enabled = models.BooleanField(default=True)
    config = models.JSONField(default=dict, blank=True)
    # Fernet token of a JSON object; never readable from a database dump without the key.
    credentials_encrypted = models.TextField(blank=True, default="")
    # Platform account ids that belong to the brand itself: posts by them are ours, never new work.
    own_account_ids = models.JSONField(default=list, blank=True)
    # Their handles (without @), so triage can tell the brand's own posts and retweets of them from customers'.
    own_handles = models.JSONField(default=list, blank=True)
    cursor = models.JSONField(default=dict, blank=True)
    health = models.CharField(max_length=10, choices=Health.choices, default=Health.UNKNOWN)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    consecutive_failures = models.PositiveIntegerField(default=0)
    posts_received = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped by every admin change of config, credentials or enabled (connectors.actions.do_update_installation):
    # a running stream compares it between batches and reconnects with the new provider.
    config_version = models.PositiveIntegerField(default=1, db_default=1)
    # The platform refused the credentials: nothing contacts it again until an admin changes them.
    auth_revoked_at = models.DateTimeField(null=True, blank=True)
    # Not before this moment (the platform's rate limit, or our back-off after failures): polls and stream
    # reconnects wait until then.
    retry_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)  # the last batch that brought something
    newest_post_at = models.DateTimeField(null=True, blank=True)  # the newest post's created_at: lag
    rate_limit_remaining = models.IntegerField(null=True, blank=True)  # where the platform says
    # Columns, not config: config is validated by each provider's own model (extra fields forbidden), and a budget
    # applies to any provider that declares prices. None: no budget. The reserve is kept for replies: reads stop
    # once the month's cost reaches budget minus reserve.
    monthly_budget = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    # Database defaults too, so rows written by older schemas (migration tests, old code in a rolling deploy) insert.
    reply_reserve = models.DecimalField(max_digits=12, decimal_places=2, default=0, db_default=0)
    # This installation's own prices ({"post_read": "0.004"}), over the provider's declared defaults.
    price_overrides = models.JSONField(default=dict, blank=True, db_default=Value({}, JSONField()))
    # The listening ladder (connectors.ladder): each rung's state ({"stream": {"failed_until": ..., "reason": ...,
    # "last_ok_at": ...}}) and the rung in use, as the runtime last chose it ("" before it ever did).
    ladder_state = models.JSONField(default=dict, blank=True, db_default=Value({}, JSONField()))
    listen_rung = models.CharField(max_length=10, blank=True, default="", db_default="")
    # The last complete compliance sweep (deletions and edits asked of a platform that sends no such events: X).
    compliance_swept_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["brand", "name"], name="installation_name_unique_per_brand")]

    def __str__(self) -> str:
        return f"{self.brand} / {self.name} ({self.provider_key})"

    def get_credentials(self) -> dict[str, Any]:
        return decrypt_json(self.credentials_encrypted) if self.credentials_encrypted else {}

    def set_credentials(self, credentials: dict[str, Any]) -> None:
        self.credentials_encrypted = encrypt_json(credentials) if credentials else ""


class ConnectorLease(models.Model):
    """Which ``caredesk listen`` process holds an installation's stream, until ``expires_at`` (database time).

    A row of its own rather than columns on the installation, so the holder's heartbeat (an UPDATE every few
    seconds) never waits behind the installation row lock that ingest holds, and never touches the installation's
    own fields. Written only by :mod:`caredesk.connectors.listen.lease`.
    """

    installation = models.OneToOneField(
        ConnectorInstallation, primary_key=True, on_delete=models.CASCADE, related_name="lease"
    )
    holder = models.CharField(max_length=200)
    acquired_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"lease of installation {self.installation_id} by {self.holder}"


class RawPayload(models.Model):
    """What a stream or a webhook delivered, stored as received in one insert before any processing, so a fault
    in processing never loses it: a failed payload keeps its error and can be processed again.

    ``body``: for a webhook the request body as sent (the provider's ``parse`` reads it); for a stream the batch
    the provider yielded, serialised by :mod:`caredesk.connectors.batches` (its rotated credentials encrypted).
    """

    class Source(models.TextChoices):
        STREAM = "stream"
        WEBHOOK = "webhook"
        POLL = "poll"

    class Status(models.TextChoices):
        PENDING = "pending"
        PROCESSED = "processed"
        FAILED = "failed"

    installation = models.ForeignKey(ConnectorInstallation, on_delete=models.CASCADE, related_name="payloads")
    source = models.CharField(max_length=10, choices=Source.choices)
    received_at = models.DateTimeField()
    body = models.BinaryField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["installation", "status", "id"], name="payload_status_idx")]

    def __str__(self) -> str:
        return f"{self.source} payload #{self.pk} ({self.status})"


from caredesk.connectors.costs.models import UsageEntry, UsageSeen  # noqa: E402  (the app's models live here)

__all__ = ["ConnectorInstallation", "ConnectorLease", "RawPayload", "UsageEntry", "UsageSeen"]
