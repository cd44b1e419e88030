"""Replies and the budget: answering keeps its reserve after reads stopped, and each sent reply is billed at
its kind's price (a reply with a URL is the dearest)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from costs_platform import PaidPlatform
from django.db import transaction

from caredesk.cases.models import Case
from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.costs.ledger import budget_allows, cost_summary, do_record_usage, do_set_budget
from caredesk.connectors.costs.models import UsageEntry
from caredesk.connectors.costs.prices import Operation, UsageEvent
from caredesk.connectors.tasks import poll_installation
from caredesk.outbox.actions import do_queue_reply
from caredesk.outbox.models import Reply
from caredesk.outbox.tasks import send_reply_now
from factories import make_brand, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_reply_uses_the_reserve_after_reads_stopped_and_is_billed(paid_platform: PaidPlatform):
    now = datetime.now(UTC)
    brand = make_brand()
    installation = do_create_installation(brand, "test_paid", "X (paid)", {"url": paid_platform.url},
                                          own_account_ids=["brand-nimbus"], own_handles=["NimbusCare"])
    paid_platform.post(2)
    with httpx.Client(timeout=5) as http:
        assert poll_installation(installation.pk, now - timedelta(minutes=1), http) == 2
    do_set_budget(installation, Decimal("0.20"), reply_reserve=Decimal("0.19"))
    # Reads stop: only $0.01 was for reads, and $0.002 of it is spent; add reads up to that.
    do_record_usage(installation, [UsageEvent(Operation.POST_READ, now, units=1)], now)
    assert not budget_allows(installation, Operation.POST_READ, now)

    case = Case.objects.filter(posts__installation=installation).first()
    assert case is not None
    post = case.posts.first()
    agent = make_user(brands=[brand])
    with transaction.atomic():
        reply = do_queue_reply(case, post, "Sorry about that, we are on it.", agent, now)
        dear = do_queue_reply(case, post, "See https://status.example.com for updates", agent, now)
    assert send_reply_now(reply.pk) == Reply.State.SENT
    entry = UsageEntry.objects.get(installation=installation, operation="summoned_reply")
    assert (entry.units_billed, entry.cost) == (1, Decimal("0.010000"))
    # A reply holding a URL costs $0.20: more than the budget has left ($0.20 - $0.017), so it is not sent,
    # and says why.
    assert send_reply_now(dear.pk) == Reply.State.FAILED
    dear.refresh_from_db()
    assert dear.error.startswith("monthly budget of $0.20 reached: replies stopped until")
    assert [c["text"] for c in paid_platform.created] == ["Sorry about that, we are on it."]
    assert cost_summary(installation, now).month == Decimal("0.017")
