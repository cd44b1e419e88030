"""Fixtures for the REST API tests: an agent with a token, a client that sends it, and cases made by ingesting
posts through the real pipeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

import factories
from caredesk.accounts.actions import do_create_api_token
from caredesk.cases.models import Case
from caredesk.connectors.models import ConnectorInstallation
from factories import make_installation, make_user

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
    """See :func:`factories.make_case`; ``installation_`` picks another installation than the fixture's."""

    def make(*args: Any, installation_: ConnectorInstallation | None = None, **kwargs: Any) -> Case:
        return factories.make_case(installation_ or installation, *args, **kwargs)

    return make
