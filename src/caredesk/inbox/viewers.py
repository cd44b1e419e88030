"""Who an open live stream is for, and the check that ends it when its session or its user's rights end."""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.db import connection

from caredesk.cases.access import visible_brand_ids
from caredesk.inbox.stream import Viewer

if TYPE_CHECKING:
    from django.http import HttpRequest


def check_session(session_key: str | None, user_id: int) -> tuple[bool, frozenset[int] | None]:
    """Whether this session still belongs to this active user, and the brands whose events they may hear now.

    Django's own ``get_user`` decides, as for any request: a logged-out (deleted) or expired session, a changed
    password or a deactivated user all fail it.
    """
    try:
        if not session_key:
            return False, frozenset()
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user: Any = auth.get_user(SimpleNamespace(session=store))  # type: ignore[arg-type]
        if not user.is_authenticated or user.pk != user_id or not user.is_active:
            return False, frozenset()
        return True, visible_brand_ids(user)
    finally:
        # Runs in a pool thread: do not leave one idle database connection per open stream.
        connection.close()


async def session_viewer(request: HttpRequest) -> Viewer:
    user = await request.auser()
    session_key = request.session.session_key
    user_id = int(user.pk)  # type: ignore[arg-type]
    brands = await sync_to_async(visible_brand_ids)(user)
    check = sync_to_async(check_session, thread_sensitive=False)

    async def recheck() -> tuple[bool, frozenset[int] | None]:
        return await check(session_key, user_id)

    return Viewer(user_id=user_id, brands=brands, recheck=recheck)
