from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models


class Brand(models.Model):
    """A company (or one of its brands) whose customers the desk answers."""

    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # How long platform content (posts, their raw records, raw payloads) of closed cases is kept, in days; None:
    # forever. Applied daily by the worker (caredesk.retention); set with ``caredesk retention set``.
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    retention_action = models.CharField(
        max_length=10, choices=[("redact", "redact"), ("delete", "delete")], default="redact", db_default="redact"
    )
    # When the policy last changed: a change makes the next run look at every closed case again.
    retention_set_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class APIToken(models.Model):
    """A bearer token for the REST API. Only a SHA-256 digest is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=80, default="default")
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @staticmethod
    def new_secret() -> str:
        return "cd_" + secrets.token_urlsafe(32)

    @staticmethod
    def digest_of(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()


class Role(models.TextChoices):
    """What a person may do for one brand, from most to least (see :mod:`caredesk.cases.access`)."""

    ADMIN = "admin"  # brand settings, people, connectors; everything a supervisor may
    SUPERVISOR = "supervisor"  # every case of the brand; reassigns, approves
    AGENT = "agent"  # works the brand's cases
    # A restricted role for community volunteers; until its rights are defined it opens no case at all.
    VOLUNTEER = "volunteer"


class Membership(models.Model):
    """A person's role for one brand. No membership: the brand does not exist for them (site owners excepted)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    brand = models.ForeignKey(Brand, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=12, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "brand"], name="membership_unique_per_brand"),
            models.CheckConstraint(
                condition=models.Q(role__in=["admin", "supervisor", "agent", "volunteer"]), name="membership_role_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.role} of {self.brand}"
