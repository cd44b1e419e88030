"""``/hooks/<installation id>``: signatures, challenges, size cap, 202 then processed by the worker's job."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from runtime_providers import sign

from caredesk.cases.models import Activity, Post
from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.costs.ledger import cost_summary, do_set_budget
from caredesk.connectors.health import connector_health
from caredesk.connectors.models import ConnectorInstallation, RawPayload
from caredesk.connectors.processing import process_payload
from caredesk.connectors.webhooks import MAX_WEBHOOK_BYTES
from caredesk.jobs.worker import run_worker
from factories import make_brand

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "shared-webhook-secret"


@pytest.fixture(autouse=True)
def _no_jobs() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")


@pytest.fixture
def hook() -> ConnectorInstallation:
    return do_create_installation(make_brand(), "test_hook", "hooks", {}, credentials={"secret": SECRET})


def _event(external_id: str, text: str, kind: str = "post") -> dict[str, object]:
    return {"type": kind, "id": external_id, "text": text, "created_at": "2026-11-23T12:00:00+00:00",
            "author": {"id": "u1", "handle": "casey", "name": "Casey"}}


def _deliver(installation: ConnectorInstallation, body: bytes, signature: str | None = None):
    return Client(enforce_csrf_checks=True).post(
        f"/hooks/{installation.pk}", body, content_type="application/json",
        headers={"X-Signature": signature if signature is not None else sign(SECRET, body)},
    )


def _jobs() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT task_name, status FROM procrastinate_jobs ORDER BY id")
        return list(cursor.fetchall())


def test_a_wrong_signature_is_refused_and_nothing_is_stored(hook):
    body = json.dumps({"events": [_event("p1", "my internet is down")]}).encode()
    refused = _deliver(hook, body, signature=sign("another secret", body))
    assert refused.status_code == 401 and "signature" in refused.json()["error"]
    assert _deliver(hook, body, signature="").status_code == 401
    assert not RawPayload.objects.exists() and _jobs() == []


def test_a_challenge_is_answered_and_nothing_is_stored(hook):
    answered = Client().get(f"/hooks/{hook.pk}", {"challenge": "abc123"})
    assert answered.status_code == 200 and answered.json() == {"challenge": "abc123"}
    assert not RawPayload.objects.exists()


def test_a_delivery_is_accepted_at_once_then_processed_by_the_job(hook):
    body = json.dumps({"events": [_event("p1", "my router keeps rebooting"), _event("p2", "and my bill")]}).encode()
    accepted = _deliver(hook, body)  # with CSRF checks on, and no session: the signature is what counts
    assert accepted.status_code == 202
    payload = RawPayload.objects.get(pk=accepted.json()["accepted"])
    assert payload.status == "pending" and bytes(payload.body) == body and payload.source == "webhook"
    assert not Post.objects.exists()  # not processed in the request
    assert _jobs() == [("connectors.process_pending", "todo")]
    run_worker(1, wait=False, install_signal_handlers=False)
    payload.refresh_from_db()
    assert payload.status == "processed" and payload.attempts == 1
    assert sorted(Post.objects.values_list("external_id", flat=True)) == ["p1", "p2"]
    # An edit and a deletion by webhook.
    changes = json.dumps({"events": [_event("p1", "router fixed, thanks", "edit"), {"type": "delete", "id": "p2"}]})
    assert _deliver(hook, changes.encode()).status_code == 202
    run_worker(1, wait=False, install_signal_handlers=False)
    assert Post.objects.get(external_id="p1").text == "router fixed, thanks"
    assert Post.objects.get(external_id="p2").text == "" and Post.objects.get(external_id="p2").deleted_at
    assert set(Activity.objects.values_list("kind", flat=True)) >= {"post_edited", "post_deleted"}


def test_a_delivery_that_cannot_be_processed_is_kept_with_its_error(hook):
    body = b'{"events": [{"type": "post", "id": "p1"}]}'  # signed, but without the fields a post needs
    assert _deliver(hook, body).status_code == 202
    run_worker(1, wait=False, install_signal_handlers=False)
    payload = RawPayload.objects.get()
    assert payload.status == "failed" and "KeyError" in payload.error and bytes(payload.body) == body
    assert not Post.objects.exists()


def test_unknown_disabled_and_oversized(hook):
    body = json.dumps({"events": []}).encode()
    assert _deliver(hook, body).status_code == 202
    missing = Client().post("/hooks/999999", body, content_type="application/json")
    assert missing.status_code == 404
    ConnectorInstallation.objects.filter(pk=hook.pk).update(enabled=False)
    assert _deliver(hook, body).status_code == 404
    ConnectorInstallation.objects.filter(pk=hook.pk).update(enabled=True)
    huge = b'{"events": [], "pad": "' + b"x" * MAX_WEBHOOK_BYTES + b'"}'
    assert _deliver(hook, huge).status_code == 413
    assert RawPayload.objects.count() == 1
    # A provider that takes no webhooks has none.
    stream = do_create_installation(hook.brand, "test_stream", "s", {"url": "http://127.0.0.1:9"})
    assert Client().post(f"/hooks/{stream.pk}", body, content_type="application/json").status_code == 404


def test_a_challenge_or_a_delivery_marks_the_webhook_rung_working_and_a_bad_signature_does_not(hook):
    body = json.dumps({"events": [_event("p1", "my internet is down")]}).encode()
    assert _deliver(hook, body, signature=sign("forged", body)).status_code == 401
    health = connector_health(ConnectorInstallation.objects.get(pk=hook.pk))
    assert health["rung"] == "import"  # a webhook-only platform that never reached us: nothing automatic works
    assert health["rung_advice"] == ("nothing automatic works: import an export with caredesk ingest "
                                     "(webhook: no delivery or CRC check received yet)")
    assert Client().get(f"/hooks/{hook.pk}", {"challenge": "abc"}).status_code == 200
    health = connector_health(ConnectorInstallation.objects.get(pk=hook.pk))
    assert health["rung"] == "webhook" and health["rung_advice"] == ""
    ConnectorInstallation.objects.filter(pk=hook.pk).update(ladder_state={})
    assert _deliver(hook, body).status_code == 202
    assert connector_health(ConnectorInstallation.objects.get(pk=hook.pk))["rung"] == "webhook"


def test_deliveries_past_the_budget_are_still_stored_and_processed_and_health_says_the_budget_is_passed():
    paid = do_create_installation(make_brand(), "test_paid_hook", "X hooks", {}, credentials={"secret": SECRET})
    do_set_budget(paid, Decimal("0.01"))
    for i in range(1, 4):  # three reads of $0.005: the platform billed them all already
        body = json.dumps({"events": [_event(f"p{i}", f"my internet is down ({i})")]}).encode()
        assert _deliver(paid, body).status_code == 202
    for payload in RawPayload.objects.filter(installation=paid).order_by("pk"):
        assert process_payload(payload.pk, datetime.now(UTC)) == "processed"
    assert sorted(Post.objects.filter(installation=paid).values_list("external_id", flat=True)) == ["p1", "p2", "p3"]
    installation = ConnectorInstallation.objects.get(pk=paid.pk)
    health = connector_health(installation)
    assert health["reads_stopped"] and health["budget_left"] == "-0.01"
    assert health["reads_stopped_reason"].startswith("monthly budget of $0.01 reached")
    assert cost_summary(installation, datetime.now(UTC)).month == Decimal("0.015")
