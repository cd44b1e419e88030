"""Who is calling: a bearer token (scripts, integrations) or the browser session of a logged-in agent (so the
interactive docs at /api/docs work).

Token requests are never CSRF-checked: a browser cannot be tricked into sending an ``Authorization`` header.
Session requests that change something are, as everywhere else in Django.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone
from ninja.security import HttpBearer
from ninja.security import SessionAuth as NinjaSessionAuth

from caredesk.accounts.actions import TOKEN_USE_RESOLUTION, do_record_token_use
from caredesk.accounts.models import APIToken

if TYPE_CHECKING:

    from django.contrib.auth.models import User
    from django.http import HttpRequest

# Writing last_used_at on every request would turn each read into a write; once a minute says enough.

# Set on the request when a token was offered but is not valid, so the 401 can say so.
BAD_TOKEN_ATTR = "_caredesk_bad_token"  # noqa: S105 (an attribute name)


class TokenAuth(HttpBearer):
    """``Authorization: Bearer <token>``, checked against the SHA-256 digests of issued tokens."""

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        token = token.strip()
        found = (
            APIToken.objects.select_related("user").filter(digest=APIToken.digest_of(token)).first()
            if token
            else None
        )
        if found is None or not found.user.is_active:
            setattr(request, BAD_TOKEN_ATTR, True)
            return None
        now = timezone.now()
        if found.last_used_at is None or now - found.last_used_at >= TOKEN_USE_RESOLUTION:
            do_record_token_use(found, now)
        return found.user


class SessionAuth(NinjaSessionAuth):
    """A logged-in agent's session cookie, CSRF-checked for unsafe methods.

    Unlike ninja's own, an anonymous request is turned away before the CSRF check, so a client that sent no
    (or a wrong) token gets 401 with an explanation rather than a bare "CSRF check failed".
    """

    def __call__(self, request: HttpRequest) -> User | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        result: User | None = super().__call__(request)
        return result
