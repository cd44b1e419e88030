"""Fixtures for the REST API tests: an agent with a token, a client that sends it, and cases made by ingesting
posts through the real pipeline."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from caredesk.accounts.actions import do_create_api_token
from caredesk.cases.models import Case, Post
from caredesk.connectors.models import ConnectorInstallation
from factories import T0, ingest, make_installation, make_post, make_user

_authors = itertools.count(1)

MakeCase = Callable[..., Case]


@pytest.fixture
def agent(db: None) -> User:
    return make_user("ana")


@pytest.fixture
def token(agent: User) -> str:
    return do_create_api_token(agent)


@pytest.fixture
def api(token: str) -> Client:
    """A client that authenticates with a bearer token and, like any script, never sends a CSRF token."""
    return Client(enforce_csrf_checks=True, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def installation(db: None) -> ConnectorInstallation:
    return make_installation()


@pytest.fixture
def make_case(installation: ConnectorInstallation) -> MakeCase:
    """Ingest one customer post (a new author each time, so each opens its own case) and return its case.

    Labels given as keywords are then set on the case, so tests do not depend on what the classifier decides.
    """

    def make(
        text: str = "my internet has been down since this morning, please help",
        *,
        minutes: int = 0,
        installation_: ConnectorInstallation | None = None,
        **labels: Any,
    ) -> Case:
        n = next(_authors)
        post = make_post(
            text, author_id=f"customer-{n}", handle=f"customer{n}", created_at=T0 + timedelta(minutes=minutes)
        )
        report = ingest(installation_ or installation, post)
        case = Post.objects.get(pk=report.post_ids[0]).case
        assert case is not None, f"triage did not open a case for {text!r}"
        if labels:
            Case.objects.filter(pk=case.pk).update(**labels)
            case.refresh_from_db()
        return case

    return make
