"""Writes for users, brands and API tokens."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils.text import slugify

from caredesk.accounts.models import APIToken, Brand


class AccountError(Exception):
    pass


def do_create_brand(name: str, slug: str | None = None) -> Brand:
    brand, _ = Brand.objects.get_or_create(slug=slug or slugify(name), defaults={"name": name})
    return brand


def do_create_user(username: str, password: str, *, email: str = "", is_staff: bool = False) -> User:
    if User.objects.filter(username=username).exists():
        raise AccountError(f"user {username!r} already exists")
    user = User(username=username, email=email, is_staff=is_staff)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise AccountError("; ".join(exc.messages)) from exc
    user.set_password(password)
    user.save()
    return user


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
