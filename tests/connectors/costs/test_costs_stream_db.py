"""A streamed batch's usage is stored with the batch (the raw payload) and billed when it is processed: once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.base import FetchResult, NormalizedAuthor, NormalizedPost
from caredesk.connectors.batches import dump_batch, load_batch
from caredesk.connectors.costs.models import UsageEntry
from caredesk.connectors.costs.prices import Operation, UsageEvent
from caredesk.connectors.models import RawPayload
from caredesk.connectors.processing import process_payload, store_payload
from factories import make_brand

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_stream_batch_is_billed_once_when_processed():
    installation = do_create_installation(make_brand(), "test_paid", "X (paid)", {"url": "http://127.0.0.1:9"})
    post = NormalizedPost("1001", NormalizedAuthor("u1", "casey"), "@NimbusCare down again", T0)
    batch = FetchResult(posts=[post], cursor={"since_id": "1001"},
                        usage=(UsageEvent(Operation.POST_READ, T0, ("1001",)),
                               UsageEvent(Operation.USER_READ, T0, units=1)))
    assert load_batch(dump_batch(batch)).usage == batch.usage
    payload_id = store_payload(installation.pk, RawPayload.Source.STREAM, dump_batch(batch), T0)
    assert process_payload(payload_id, T0) == "processed"
    assert process_payload(payload_id, T0) == "already processed"
    rows = dict(UsageEntry.objects.filter(installation=installation).values_list("operation", "cost"))
    assert rows == {"post_read": Decimal("0.005000"), "user_read": Decimal("0.010000")}
