"""Writes of the agent UI itself: presence (who is viewing or replying to a case)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from caredesk.cases.events import publish_presence
from caredesk.cases.models import Case
from caredesk.inbox.models import CasePresence

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Browsers send a heartbeat every few seconds; presence older than this is someone who left.
PRESENCE_TTL = timedelta(seconds=20)


def do_heartbeat(case: Case, user: User, mode: str, now: datetime) -> None:
    """Record that ``user`` is on ``case``; announce it when it is news to other agents."""
    if mode not in CasePresence.Mode.values:
        mode = CasePresence.Mode.VIEWING
    presence = CasePresence.objects.filter(case=case, user=user).first()
    changed = presence is None or presence.mode != mode or now - presence.last_seen > PRESENCE_TTL
    CasePresence.objects.update_or_create(case=case, user=user, defaults={"mode": mode, "last_seen": now})
    if changed:
        publish_presence(case.pk, case.brand_id)


def do_leave_case(case: Case, user: User) -> None:
    deleted, _ = CasePresence.objects.filter(case=case, user=user).delete()
    if deleted:
        publish_presence(case.pk, case.brand_id)


def get_presence(case: Case, now: datetime, exclude: User | None = None) -> list[CasePresence]:
    qs = CasePresence.objects.filter(case=case, last_seen__gte=now - PRESENCE_TTL).select_related("user")
    if exclude is not None:
        qs = qs.exclude(user=exclude)
    return list(qs.order_by("user__username"))
