"""Fixtures for the agent inbox tests: two agents, logged-in clients, and cases made through the real pipeline."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from inbox_support import MakeCase

import factories
from caredesk.cases.models import Case
from caredesk.connectors.models import ConnectorInstallation
from caredesk.inbox.models import CannedReply
from factories import make_installation, make_user


@pytest.fixture
def agent(db: None) -> User:
    return make_user("ana")


@pytest.fixture
def other_agent(db: None) -> User:
    return make_user("ben")


@pytest.fixture
def agent_client(agent: User) -> Client:
    client = Client()
    client.force_login(agent)
    return client


@pytest.fixture
def other_client(other_agent: User) -> Client:
    client = Client()
    client.force_login(other_agent)
    return client


@pytest.fixture
def installation(db: None) -> ConnectorInstallation:
    return make_installation()


@pytest.fixture
def can_i_help(db: None) -> CannedReply:
    """The canned reply the data migration creates (a transactional test elsewhere may have flushed it)."""
    canned, _ = CannedReply.objects.get_or_create(brand=None, title="Can I help?", defaults={"text": "Can I help?"})
    return canned


@pytest.fixture
def make_case(installation: ConnectorInstallation) -> MakeCase:
    """See :func:`factories.make_case`; ``installation_`` picks another installation than the fixture's."""

    def make(*args: Any, installation_: ConnectorInstallation | None = None, **kwargs: Any) -> Case:
        return factories.make_case(installation_ or installation, *args, **kwargs)

    return make


@pytest.fixture
def case(make_case: MakeCase) -> Case:
    return make_case("@NimbusCare my internet is down again since 6am, modem blinking orange. Please help!")
