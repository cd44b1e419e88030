"""Fixtures shared by the triage tests that need the database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User

from caredesk.triage import brand_models
from factories import make_user


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Brand bundles are cached per process; each test starts and ends without them."""
    brand_models.clear_bundle_cache()
    yield
    brand_models.clear_bundle_cache()


@pytest.fixture
def agent(db: None) -> User:
    return make_user("ana")
