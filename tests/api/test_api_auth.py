from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from caredesk.accounts.models import APIToken
from caredesk.cases.models import Case

pytestmark = pytest.mark.django_db

MakeCase = Callable[..., Case]


def test_no_credentials_is_401_with_an_explanation() -> None:
    response = Client().get("/api/cases")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert "Authorization: Bearer" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_unknown_token_is_401() -> None:
    response = Client(headers={"Authorization": "Bearer cd_not-a-real-token"}).get("/api/cases")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("invalid API token")


def test_other_scheme_is_401(token: str) -> None:
    response = Client(headers={"Authorization": f"Basic {token}"}).get("/api/cases")
    assert response.status_code == 401


def test_token_of_inactive_user_is_401(api: Client, agent: User) -> None:
    agent.is_active = False
    agent.save()
    assert api.get("/api/cases").status_code == 401


def test_good_token_works_and_records_use(api: Client, token: str) -> None:
    row = APIToken.objects.get(digest=APIToken.digest_of(token))
    assert row.last_used_at is None
    response = api.get("/api/cases")
    assert response.status_code == 200
    assert response.json()["items"] == []
    row.refresh_from_db()
    assert row.last_used_at is not None
    assert timezone.now() - row.last_used_at < timedelta(seconds=30)


def test_last_used_is_written_at_most_once_a_minute(api: Client, token: str) -> None:
    api.get("/api/cases")
    row = APIToken.objects.get(digest=APIToken.digest_of(token))
    first = row.last_used_at
    api.get("/api/cases")
    row.refresh_from_db()
    assert row.last_used_at == first  # a second request within the minute writes nothing

    stale = timezone.now() - timedelta(minutes=2)
    APIToken.objects.filter(pk=row.pk).update(last_used_at=stale)
    api.get("/api/cases")
    row.refresh_from_db()
    assert row.last_used_at is not None and row.last_used_at > stale


def test_a_token_request_needs_no_csrf_token(api: Client, make_case: MakeCase, agent: User) -> None:
    case = make_case()
    # `api` enforces CSRF checks like a browser would; the bearer token alone must be enough.
    response = api.post(f"/api/cases/{case.pk}/resolve")
    assert response.status_code == 200, response.content
    assert Case.objects.get(pk=case.pk).status == Case.Status.RESOLVED


def test_logged_in_session_can_read(agent: User) -> None:
    browser = Client()
    browser.force_login(agent)
    assert browser.get("/api/cases").status_code == 200


def test_session_writes_need_the_csrf_token(agent: User, make_case: MakeCase) -> None:
    case = make_case()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(agent)
    refused = browser.post(f"/api/cases/{case.pk}/resolve")
    assert refused.status_code == 403
    assert Case.objects.get(pk=case.pk).status != Case.Status.RESOLVED

    browser.get("/api/docs")  # renders {% csrf_token %}-backed settings, which sets the CSRF cookie
    csrf = browser.cookies["csrftoken"].value
    accepted = browser.post(f"/api/cases/{case.pk}/resolve", headers={"X-CSRFToken": csrf})
    assert accepted.status_code == 200, accepted.content
    assert Case.objects.get(pk=case.pk).status == Case.Status.RESOLVED


def test_anonymous_write_is_401_not_a_csrf_failure(make_case: MakeCase) -> None:
    case = make_case()
    response = Client(enforce_csrf_checks=True).post(f"/api/cases/{case.pk}/resolve")
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]
