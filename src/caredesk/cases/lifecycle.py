"""The one way a case changes status, so the timeline is the truth about a case.

Every status change, whether an agent's click, an assignment, a sent reply or a customer writing again, goes
through :func:`transition`, which checks the move, updates the case in memory and returns the ``case_status``
Activity that records it (with the previous status and why). SLA clocks, reports and the live stream read those
rows, so a change that bypassed this function would make all three wrong.

::

    new ──► open ──► pending ──► open ...
     │        │         │
     └────────┴─────────┴──► resolved ──► open (reopened)
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from caredesk.cases.models import Activity, Case

if TYPE_CHECKING:
    from django.contrib.auth.models import User

S = Case.Status

ALLOWED: dict[str, frozenset[str]] = {
    S.NEW: frozenset({S.OPEN, S.PENDING, S.RESOLVED}),
    S.OPEN: frozenset({S.PENDING, S.RESOLVED}),
    S.PENDING: frozenset({S.OPEN, S.RESOLVED}),
    S.RESOLVED: frozenset({S.OPEN}),
}


class Reason(enum.StrEnum):
    """Why a case changed status; stored in the activity's ``reason``."""

    AGENT = "changed by an agent"
    ASSIGNED = "assigned"
    REPLIED = "replied; waiting for the customer"
    CUSTOMER_ANSWERED = "the customer answered"
    CUSTOMER_WROTE_AGAIN = "customer wrote again"
    REOPENED = "reopened"


class TransitionError(Exception):
    """A status change the lifecycle does not allow."""


def check_transition(case: Case, status: str) -> None:
    if status not in S.values:
        raise TransitionError(f"unknown status {status!r}; use one of {', '.join(S.values)}")
    if status != case.status and status not in ALLOWED[case.status]:
        raise TransitionError(f"a {case.status} case cannot become {status}")


def transition(case: Case, status: str, now: datetime, reason: Reason, actor: User | None = None) -> Activity | None:
    """Move ``case`` to ``status`` in memory and return the unsaved Activity recording it (None: no change).

    The caller saves the case's ``status``, ``resolved_at`` and ``updated_at``, saves the activity (alone or in a
    bulk insert) and publishes it; all in its own transaction, while holding the case row lock.
    """
    check_transition(case, status)
    previous = case.status
    if status == previous:
        return None
    case.status = status
    case.resolved_at = now if status == S.RESOLVED else None
    case.updated_at = now
    return Activity(
        kind=Activity.Kind.CASE_STATUS,
        brand_id=case.brand_id,
        case=case,
        actor=actor,
        created_at=now,
        data={"status": status, "previous": previous, "reason": str(reason)},
    )
