"""How the inbox writes times: the compact age of dense lists and the prose age of the case header."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone
from inbox_support import HX

from caredesk.cases.models import Case
from caredesk.inbox.templatetags.inbox_tags import age, ago

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("seconds", "compact", "prose"), [
    (0, "now", "just now"),
    (4, "now", "just now"),
    (42, "42s", "just now"),
    (59, "59s", "just now"),
    (60, "1m", "1m ago"),
    (5 * 60 + 30, "5m", "5m ago"),
    (3 * 3600, "3h", "3h ago"),
    (2 * 86400 + 5, "2d", "2d ago"),
    (6 * 604800, "6w", "6w ago"),
    (-30, "now", "just now"),  # a clock a little ahead: never "-30s ago"
])
def test_age_and_ago(seconds: int, compact: str, prose: str) -> None:
    then = NOW - timedelta(seconds=seconds)
    assert age(then, NOW) == compact
    assert ago(then, NOW) == prose


def test_no_time_is_empty() -> None:
    assert age(None, NOW) == "" and ago(None, NOW) == ""


@pytest.mark.django_db
def test_case_header_says_opened_just_now_then_hours_ago(agent_client: Client, case: Case) -> None:
    def opened() -> str:
        html = agent_client.get(f"/cases/{case.pk}/", headers=HX).content.decode()
        assert "now ago" not in html
        found = re.search(r">(opened [^<]*)<", html)
        assert found is not None
        return found.group(1)

    Case.objects.filter(pk=case.pk).update(created_at=timezone.now() - timedelta(seconds=20))
    assert opened() == "opened just now"
    Case.objects.filter(pk=case.pk).update(created_at=timezone.now() - timedelta(hours=3, minutes=5))
    assert opened() == "opened 3h ago"
