"""Factories for tests: real rows made through the real actions."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from caredesk.accounts.actions import do_create_brand, do_create_user
from caredesk.accounts.models import Brand
from caredesk.cases.actions import ReceiveReport
from caredesk.cases.models import Case, Post
from caredesk.connectors.actions import do_create_installation, lock_installation
from caredesk.connectors.base import NormalizedAuthor, NormalizedPost
from caredesk.connectors.models import ConnectorInstallation
from caredesk.ingest.pipeline import ingest_posts

_seq = itertools.count(1)
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def make_brand(name: str = "Nimbus") -> Brand:
    return do_create_brand(name)


def make_user(
    username: str | None = None,
    password: str = "agent-password-1",
    *,
    role: str = "agent",
    brands: list[Brand] | None = None,
    **kw: Any,
) -> User:
    """A person with ``role`` in ``brands`` (default: the Nimbus brand every factory uses); ``brands=[]`` for
    none. ``is_site_owner=True`` makes a site owner."""
    if brands is None:
        brands = [] if kw.get("is_site_owner") else [make_brand()]
    return do_create_user(
        username or f"agent{next(_seq)}", password, memberships=[(b, role) for b in brands], **kw
    )


def make_installation(brand: Brand | None = None, **config: Any) -> ConnectorInstallation:
    brand = brand or make_brand()
    config = {"brand": "nimbus", "platform": "x", **config}
    return do_create_installation(
        brand, "replay", f"replay {next(_seq)}", config, own_account_ids=["brand-nimbus"], own_handles=["NimbusCare"]
    )


def make_post(
    text: str = "my internet is down again",
    *,
    external_id: str | None = None,
    author_id: str = "u1",
    handle: str = "casey",
    followers: int = 10,
    created_at: datetime | None = None,
    in_reply_to: str = "",
    is_direct: bool = False,
) -> NormalizedPost:
    n = next(_seq)
    return NormalizedPost(
        external_id=external_id or f"p{n}",
        author=NormalizedAuthor(author_id, handle, handle.title(), followers),
        text=text,
        created_at=created_at or T0 + timedelta(seconds=n),
        in_reply_to_external_id=in_reply_to,
        is_direct=is_direct,
    )


def ingest(installation: ConnectorInstallation, *posts: NormalizedPost, now: datetime | None = None) -> ReceiveReport:
    with transaction.atomic():
        locked = lock_installation(installation.pk)
        return ingest_posts(locked, "x", list(posts), now or T0 + timedelta(hours=1))


def make_case(
    installation: ConnectorInstallation,
    text: str = "my internet has been down since this morning, please help",
    *,
    minutes: int = 0,
    handle: str | None = None,
    author_id: str | None = None,
    **labels: Any,
) -> Case:
    """Ingest one customer post (a new author each time, so each opens its own case) and return its case.

    Labels given as keywords are then set on the case, so tests do not depend on what the classifier decides.
    """
    n = next(_seq)
    post = make_post(
        text,
        author_id=author_id or f"customer-{n}",
        handle=handle or f"customer{n}",
        created_at=T0 + timedelta(minutes=minutes),
    )
    report = ingest(installation, post)
    case = Post.objects.get(pk=report.post_ids[0]).case
    assert case is not None, f"triage did not open a case for {text!r}"
    if labels:
        Case.objects.filter(pk=case.pk).update(**labels)
        case.refresh_from_db()
    return case
