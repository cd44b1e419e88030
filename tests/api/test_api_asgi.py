"""The API served the way production serves it: through Django's ASGI handler."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from caredesk.cases.models import Activity, Case

pytestmark = pytest.mark.django_db

MakeCase = Callable[..., Case]


def test_api_works_under_asgi(token: str, make_case: MakeCase) -> None:
    case = make_case(status="open")
    client = AsyncClient(enforce_csrf_checks=True)
    auth = {"Authorization": f"Bearer {token}"}
    # async_to_sync runs the (sync) handlers back on this thread, inside the test's transaction.
    listed = async_to_sync(client.get)("/api/cases", headers=auth)
    assert listed.status_code == 200, listed.content
    assert [item["id"] for item in listed.json()["items"]] == [case.pk]
    resolved = async_to_sync(client.post)(f"/api/cases/{case.pk}/resolve", headers=auth)
    assert resolved.status_code == 200, resolved.content
    assert Case.objects.get(pk=case.pk).status == Case.Status.RESOLVED
    assert Activity.objects.filter(case=case, kind=Activity.Kind.CASE_STATUS).count() == 1
    refused = async_to_sync(AsyncClient().get)("/api/cases")
    assert refused.status_code == 401
