"""/metrics: off without a token, refused without the right one, and what it reports comes from the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from caredesk.cases.models import Case
from caredesk.connectors.models import ConnectorInstallation
from caredesk.outbox.actions import do_queue_reply
from caredesk.outbox.models import Reply
from factories import make_case, make_installation, make_user

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = "scrape-token-123"


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_are_off_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAREDESK_METRICS_TOKEN", raising=False)
    assert Client().get("/metrics").status_code == 404


def test_metrics_refuse_a_missing_or_wrong_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREDESK_METRICS_TOKEN", TOKEN)
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert Client().get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    # A logged-in agent is not a scraper: the token is the only way in.
    user = make_user(is_site_owner=True)
    client = Client()
    client.force_login(user)
    assert client.get("/metrics").status_code == 401


def test_metrics_report_lag_posts_jobs_replies_and_overdue_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREDESK_METRICS_TOKEN", TOKEN)
    installation = make_installation()
    agent = make_user(brands=[installation.brand])
    answered = make_case(installation, minutes=0)
    make_case(installation, minutes=1)  # still waiting for a first reply
    Case.objects.update(needs_reply=True, status="new", last_inbound_at=datetime.now(UTC) - timedelta(hours=2))
    with transaction.atomic():
        post = answered.posts.get()
        do_queue_reply(answered, post, "Can I help?", agent, datetime.now(UTC))
    Reply.objects.update(state="failed")
    Case.objects.filter(pk=answered.pk).update(first_response_at=datetime.now(UTC))
    newest = datetime.now(UTC) - timedelta(minutes=10)
    # What a poll records (connectors.actions): its count of posts received and the newest post's time.
    ConnectorInstallation.objects.filter(pk=installation.pk).update(newest_post_at=newest, posts_received=7)

    response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = _samples(response.content.decode())
    labels = (("brand", installation.brand.slug), ("installation", str(installation.pk)),
              ("name", installation.name), ("provider", "replay"))
    assert samples[("caredesk_installation_posts_received_total", labels)] == 7
    assert 600 <= samples[("caredesk_installation_lag_seconds", labels)] < 660
    assert samples[("caredesk_installation_up", labels)] in (0, 1)
    # PostgreSQL's statistics reach pg_stat_user_tables a moment after commit: only its presence is certain here.
    assert ("caredesk_posts_inserted_total", ()) in samples
    assert samples[("caredesk_replies", (("state", "failed"),))] == 1
    assert samples[("caredesk_replies", (("state", "sent"),))] == 0
    assert samples[("caredesk_jobs", (("queue", "outbox"), ("status", "todo")))] >= 1
    assert samples[("caredesk_first_reply_overdue_cases", (("brand", installation.brand.slug),))] == 1
    assert samples[("caredesk_metrics_scrape_errors", ())] == 0
