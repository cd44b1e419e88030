"""What the desk knows about a connector installation's health, for ``/healthz`` and the admin pages."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Count

from caredesk.connectors.costs.ledger import CostSummary, budget_stop, cost_summaries
from caredesk.connectors.costs.prices import Operation
from caredesk.connectors.models import ConnectorInstallation, ConnectorLease, RawPayload
from caredesk.connectors.rungs import allowed_rungs, current_choice


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _money(value: Decimal | None) -> str | None:
    # Half up, as a bill rounds: $0.005 over the budget shows as $0.01 over, not "-0.00".
    return None if value is None else str(value.quantize(Decimal("0.01"), ROUND_HALF_UP))


def _costs(installation: ConnectorInstallation, cost: CostSummary, now: datetime) -> dict[str, Any]:
    budget = installation.monthly_budget
    stop = budget_stop(installation, Operation.POST_READ, now, cost)
    return {
        "cost_today": _money(cost.today),
        "cost_month": _money(cost.month),
        "forecast_month": _money(cost.forecast_month),
        "budget": _money(budget),
        "budget_left": _money(budget - cost.month) if budget is not None else None,
        "reads_stopped": stop is not None,
        "reads_stopped_reason": stop or "",
        "reads_deduped_month": cost.reads_deduped_month,
    }


def _health(
    installation: ConnectorInstallation, lease: ConnectorLease | None, counts: dict[str, int], now: datetime,
    cost: CostSummary,
) -> dict[str, Any]:
    live = lease is not None and lease.expires_at > now
    allowed = allowed_rungs(installation)
    choice = current_choice(installation, now, stream_held=live, allowed=allowed)
    return {
        "health": installation.health,
        # The listening ladder: the rung in use, why each higher allowed one is not, and what to do where only
        # manual import is left.
        "rung": choice.rung.value,
        "rung_reasons": list(choice.reasons),
        "rung_advice": choice.advice,
        "allowed_rungs": [r.value for r in allowed],
        # Streams: a ``caredesk listen`` process holds the lease, renews it, and its connection is not failing.
        "connected": (live and installation.consecutive_failures == 0 and installation.auth_revoked_at is None)
        if lease is not None else None,
        "listener": lease.holder if live and lease is not None else None,
        "heartbeat_at": _iso(lease.heartbeat_at if lease is not None else None),
        "last_event_at": _iso(installation.last_event_at),
        "last_success_at": _iso(installation.last_success_at),
        "lag_seconds": round((now - installation.newest_post_at).total_seconds(), 3)
        if installation.newest_post_at else None,
        "rate_limit_remaining": installation.rate_limit_remaining,
        "retry_at": _iso(installation.retry_at),
        "consecutive_failures": installation.consecutive_failures,
        "last_error": installation.last_error,
        "credentials_refused": installation.auth_revoked_at is not None,
        "failed_payloads": counts.get(RawPayload.Status.FAILED, 0),
        "pending_payloads": counts.get(RawPayload.Status.PENDING, 0),
        **_costs(installation, cost, now),
    }


def connector_health(installation: ConnectorInstallation, now: datetime | None = None) -> dict[str, Any]:
    """One installation's health: the rung of the listening ladder in use (and why not a higher one), connected
    (streams), last event, lag, rate limit left, errors, payloads, and what its platform calls cost (today, this
    month, the month's forecast, budget left, whether reads stopped)."""
    return connectors_health([installation], now)[installation.pk]


def connectors_health(
    installations: Iterable[ConnectorInstallation], now: datetime | None = None
) -> dict[int, dict[str, Any]]:
    """:func:`connector_health` of many installations in four queries, by installation id."""
    now = now or datetime.now(UTC)
    rows = list(installations)
    ids = [i.pk for i in rows]
    leases = {lease.installation_id: lease for lease in ConnectorLease.objects.filter(installation_id__in=ids)}
    counts: dict[int, dict[str, int]] = {}
    for installation_id, status, n in (
        RawPayload.objects.filter(installation_id__in=ids, status__in=[RawPayload.Status.FAILED,
                                                                      RawPayload.Status.PENDING])
        .values_list("installation_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        counts.setdefault(installation_id, {})[status] = n
    costs = cost_summaries(ids, now)
    return {i.pk: _health(i, leases.get(i.pk), counts.get(i.pk, {}), now, costs[i.pk]) for i in rows}
