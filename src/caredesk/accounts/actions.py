"""Writes for users, brands and API tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.contrib import auth
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import ASCIIUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.http import HttpRequest
from django.utils.text import slugify

from caredesk.accounts.models import APIToken, Brand, Membership, Role
from caredesk.cases.events import publish_user_changed


class AccountError(Exception):
    """A change to people, brands or tokens that cannot be made; the message says why."""


USERNAME_MAX = 150
BRAND_NAME_MAX = 120
BRAND_SLUG_MAX = 60
# Usernames appear in URLs, logs, mentions in notes and the API's ``assignee`` field, where "me" and "none" mean
# something else; ASCII letters, digits and @ . + - _ only, so a name cannot imitate another with look-alikes.
_username_validator = ASCIIUsernameValidator()
RESERVED_USERNAMES = frozenset({"me", "none"})


def check_username(username: str) -> str:
    username = username.strip()
    if not username:
        raise AccountError("a username cannot be empty")
    if len(username) > USERNAME_MAX:
        raise AccountError(f"a username has at most {USERNAME_MAX} characters")
    if username.lower() in RESERVED_USERNAMES:
        raise AccountError(f"{username!r} is reserved; choose another username")
    try:
        _username_validator(username)
    except ValidationError:
        raise AccountError(
            f"invalid username {username!r}: use only English letters, digits and @ . + - _"
        ) from None
    return username


def check_role(role: str) -> Role:
    if role not in Role.values:
        raise AccountError(f"unknown role {role!r}; use one of {', '.join(Role.values)}")
    return Role(role)


def do_create_brand(name: str, slug: str | None = None) -> Brand:
    """The brand with this slug, created if missing (so seeding is repeatable)."""
    name = name.strip()
    slug = (slug or slugify(name)).strip()
    if not name or len(name) > BRAND_NAME_MAX:
        raise AccountError(f"a brand name needs 1 to {BRAND_NAME_MAX} characters")
    if not slug or len(slug) > BRAND_SLUG_MAX:
        raise AccountError(f"a brand slug needs 1 to {BRAND_SLUG_MAX} characters")
    try:
        validate_slug(slug)
    except ValidationError:
        raise AccountError(f"invalid slug {slug!r}: use letters, digits, hyphens and underscores") from None
    brand = Brand.objects.filter(slug=slug).first()
    if brand is not None:
        return brand
    if Brand.objects.filter(name=name).exists():
        raise AccountError(f"another brand is already called {name!r}")
    return Brand.objects.create(slug=slug, name=name)


def do_create_user(
    username: str,
    password: str,
    *,
    email: str = "",
    is_site_owner: bool = False,
    memberships: Sequence[tuple[Brand, str]] = (),
) -> User:
    """A person who can log in. ``memberships``: (brand, role) pairs; a site owner sees every brand without any."""
    username = check_username(username)
    if User.objects.filter(username__iexact=username).exists():
        raise AccountError(f"user {username!r} already exists")
    for _, role in memberships:
        check_role(role)
    user = User(username=username, email=email, is_superuser=is_site_owner)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise AccountError("; ".join(exc.messages)) from exc
    user.set_password(password)
    user.save()
    for brand, role in memberships:
        do_set_membership(user, brand, role)
    return user


def do_set_membership(user: User, brand: Brand, role: str) -> Membership:
    """Give ``user`` this role for ``brand`` (replacing the role they had there)."""
    membership, _ = Membership.objects.update_or_create(user=user, brand=brand, defaults={"role": check_role(role)})
    publish_user_changed(user.pk)
    return membership


def do_remove_membership(user: User, brand: Brand) -> bool:
    deleted, _ = Membership.objects.filter(user=user, brand=brand).delete()
    if deleted:
        publish_user_changed(user.pk)
    return bool(deleted)


def do_deactivate_user(user: User) -> User:
    """The person can no longer log in or use a token; their sessions and live streams end at their next request
    or stream check. Their name stays on the cases and timelines they worked."""
    if not user.is_active:
        return user
    user.is_active = False
    user.save(update_fields=["is_active"])
    from django.contrib.sessions.models import Session

    # Sessions are not indexed by user; an inactive user's sessions are refused anyway (ModelBackend checks
    # is_active on every request), this only removes them sooner.
    stale = [
        s.pk for s in Session.objects.iterator() if str(s.get_decoded().get("_auth_user_id")) == str(user.pk)
    ]
    Session.objects.filter(pk__in=stale).delete()
    publish_user_changed(user.pk)
    return user


def do_log_out(request: HttpRequest) -> None:
    """End this browser session; the user's open live streams check their sessions at once and the one of this
    session ends."""
    user_id = request.user.pk if request.user.is_authenticated else None
    auth.logout(request)
    if user_id is not None:
        publish_user_changed(int(user_id))


def get_tokens(username: str | None = None) -> list[APIToken]:
    tokens = APIToken.objects.select_related("user").order_by("user__username", "created_at", "pk")
    if username is not None:
        tokens = tokens.filter(user__username=username)
    return list(tokens)


def do_revoke_token(prefix: str) -> APIToken:
    """Revoke the one token whose shown prefix starts with ``prefix``; refuses an ambiguous or unknown prefix."""
    prefix = prefix.strip().rstrip("…")
    if len(prefix) < 4:
        raise AccountError("give at least the first 4 characters of the token")
    matches = list(APIToken.objects.select_related("user").filter(prefix__startswith=prefix[:8]))
    if len(prefix) > 8:  # the whole token (or more of it than the prefix): compare its digest
        matches = [t for t in matches if t.digest == APIToken.digest_of(prefix)]
    if not matches:
        raise AccountError(f"no token starts with {prefix!r}")
    if len(matches) > 1:
        raise AccountError(f"{len(matches)} tokens start with {prefix!r}; give the whole token")
    token = matches[0]
    token.delete()
    return token


def do_create_api_token(user: User, name: str = "default") -> str:
    """Create a token and return it in clear: the only time it is visible."""
    secret = APIToken.new_secret()
    APIToken.objects.create(user=user, name=name, digest=APIToken.digest_of(secret), prefix=secret[:8])
    return secret


# last_used_at is informational; writing it on every request would make each API call a write.
TOKEN_USE_RESOLUTION = timedelta(minutes=1)


def do_record_token_use(token: APIToken, now: datetime) -> None:
    """Stamp ``last_used_at`` unless another request did within the last minute.

    A single conditional UPDATE, so concurrent requests with the same token neither block each other nor write
    twice.
    """
    APIToken.objects.filter(pk=token.pk).exclude(last_used_at__gte=now - TOKEN_USE_RESOLUTION).update(
        last_used_at=now
    )
