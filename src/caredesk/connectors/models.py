from __future__ import annotations

from typing import Any

from django.db import models

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

    class Meta:
        constraints = [models.UniqueConstraint(fields=["brand", "name"], name="installation_name_unique_per_brand")]

    def __str__(self) -> str:
        return f"{self.brand} / {self.name} ({self.provider_key})"

    def get_credentials(self) -> dict[str, Any]:
        return decrypt_json(self.credentials_encrypted) if self.credentials_encrypted else {}

    def set_credentials(self, credentials: dict[str, Any]) -> None:
        self.credentials_encrypted = encrypt_json(credentials) if credentials else ""
