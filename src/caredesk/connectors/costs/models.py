"""The usage ledger: what each installation's platform calls cost, one row per installation, UTC day and
operation (an upsert per batch, not a row per call), and the read ids billed today (the platform's daily
de-duplication needs them across polls)."""

from __future__ import annotations

from django.db import models


class UsageEntry(models.Model):
    installation = models.ForeignKey(
        "connectors.ConnectorInstallation", on_delete=models.CASCADE, related_name="usage_entries"
    )
    day = models.DateField()  # UTC
    operation = models.CharField(max_length=30)
    units_billed = models.PositiveBigIntegerField(default=0)
    units_deduped = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=6, default=0)

    class Meta:
        app_label = "connectors"
        constraints = [
            models.UniqueConstraint(fields=["installation", "day", "operation"], name="usage_entry_unique_per_day")
        ]

    def __str__(self) -> str:
        return f"{self.installation_id} {self.day} {self.operation}: {self.units_billed} (${self.cost})"


class UsageSeen(models.Model):
    """A read billed today; older days are pruned when usage is recorded (the platform forgets them too)."""

    installation = models.ForeignKey("connectors.ConnectorInstallation", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    operation = models.CharField(max_length=30)
    resource_id = models.CharField(max_length=100)

    class Meta:
        app_label = "connectors"
        constraints = [
            models.UniqueConstraint(fields=["installation", "day", "operation", "resource_id"],
                                    name="usage_seen_unique")
        ]

    def __str__(self) -> str:
        return f"{self.installation_id} {self.day} {self.operation} {self.resource_id}"
