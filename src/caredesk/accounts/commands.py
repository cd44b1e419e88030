"""``caredesk brand …``, ``caredesk user …`` and ``caredesk token …``: brands, people and API tokens from the
command line (the settings pages come later).

Each command runs inside the CLI's set-up context (database, Django, schema check) that it is given, parses,
then calls :mod:`caredesk.accounts.actions` in one transaction. Refusals print ``error: …`` and exit 2.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable

from caredesk.cli.registry import AddParser, Setup

EXIT_REFUSED = 2


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_REFUSED


def _password(args: argparse.Namespace) -> str | None:
    password: str | None = args.password or os.environ.get("CAREDESK_PASSWORD")
    if password:
        return password
    if not sys.stdin.isatty():
        _error("give --password or CAREDESK_PASSWORD when not at a terminal")
        return None
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Password (again): "):
        _error("the passwords differ")
        return None
    return password


def _memberships(args: argparse.Namespace) -> list[tuple[str, str]] | str:
    """Pairs of (brand slug, role) from repeated ``--brand`` / ``--role``; a message when they do not pair up."""
    brands, roles = args.brand or [], args.role or []
    if len(roles) == 1 and len(brands) > 1:
        roles = roles * len(brands)  # one role for every brand given
    if len(brands) != len(roles):
        return "give one --role per --brand (or one --role for all of them)"
    return list(zip(brands, roles, strict=True))


def cmd_brand_create(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from django.db import transaction

        from caredesk.accounts.actions import AccountError, do_create_brand
        from caredesk.accounts.models import Brand

        try:
            with transaction.atomic():
                existed = Brand.objects.filter(slug=args.slug).exists()
                brand = do_create_brand(args.name or args.slug, args.slug)
        except AccountError as exc:
            return _error(str(exc))
        print(f"brand {brand.slug} ({brand.name}) {'already exists' if existed else 'created'}")
        return 0


def cmd_brand_list(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from django.db.models import Count

        from caredesk.accounts.models import Brand

        for brand in Brand.objects.annotate(people=Count("memberships")).order_by("slug"):
            print(f"{brand.slug}\t{brand.name}\t{brand.people} people")
        return 0


def cmd_user_add(args: argparse.Namespace, setup: Setup) -> int:
    pairs = _memberships(args)
    if isinstance(pairs, str):
        return _error(pairs)
    if not pairs and not args.owner:
        print("warning: no --brand given: this person sees no case until given a brand", file=sys.stderr)
    with setup(args):
        from django.db import transaction

        from caredesk.accounts.actions import (
            AccountError,
            check_role,
            check_username,
            do_create_api_token,
            do_create_user,
        )
        from caredesk.accounts.models import Brand

        try:
            username = check_username(args.username)
            brands = {b.slug: b for b in Brand.objects.filter(slug__in=[slug for slug, _ in pairs])}
            missing = sorted({slug for slug, _ in pairs} - set(brands))
            if missing:
                return _error(f"no brand {', '.join(missing)}; create it with: caredesk brand create SLUG --name NAME")
            for _, role in pairs:
                check_role(role)
        except AccountError as exc:
            return _error(str(exc))
        password = _password(args)
        if password is None:
            return EXIT_REFUSED
        try:
            with transaction.atomic():
                user = do_create_user(
                    username, password, email=args.email, is_site_owner=args.owner,
                    memberships=[(brands[slug], role) for slug, role in pairs],
                )
                token = do_create_api_token(user) if args.token else None
        except AccountError as exc:
            return _error(str(exc))
        roles = ", ".join(f"{role} of {slug}" for slug, role in pairs) or "no brand"
        print(f"created user {user.username}" + (" (site owner)" if args.owner else f": {roles}"))
        if token:
            print(f"API token (shown once): {token}")
        return 0


def cmd_user_deactivate(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from django.contrib.auth.models import User
        from django.db import transaction

        from caredesk.accounts.actions import do_deactivate_user

        with transaction.atomic():
            user = User.objects.select_for_update().filter(username=args.username).first()
            if user is None:
                return _error(f"no user {args.username!r}")
            was_active = user.is_active
            do_deactivate_user(user)
        print(f"user {user.username} " + ("deactivated" if was_active else "was already inactive"))
        return 0


def cmd_user_list(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from django.contrib.auth.models import User

        for user in User.objects.prefetch_related("memberships__brand").order_by("username"):
            roles = ", ".join(f"{m.role} of {m.brand.slug}" for m in user.memberships.all())
            kind = "site owner" if user.is_superuser else roles or "no brand"
            print(f"{user.username}\t{'active' if user.is_active else 'inactive'}\t{kind}")
        return 0


def cmd_token_create(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from django.contrib.auth.models import User
        from django.db import transaction

        from caredesk.accounts.actions import do_create_api_token

        user = User.objects.filter(username=args.username, is_active=True).first()
        if user is None:
            return _error(f"no active user {args.username!r}")
        with transaction.atomic():
            token = do_create_api_token(user, args.name)
        print(f"API token for {user.username} (shown once): {token}")
        return 0


def cmd_token_list(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from caredesk.accounts.actions import get_tokens

        tokens = get_tokens(args.username)
        if not tokens:
            print("no tokens" + (f" for {args.username}" if args.username else ""))
        for token in tokens:
            used = token.last_used_at.isoformat(timespec="minutes") if token.last_used_at else "never used"
            print(f"{token.prefix}…\t{token.user.username}\t{token.name}\t"
                  f"created {token.created_at.isoformat(timespec='minutes')}\t{used}")
        return 0


def cmd_token_revoke(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from django.db import transaction

        from caredesk.accounts.actions import AccountError, do_revoke_token

        try:
            with transaction.atomic():
                token = do_revoke_token(args.prefix)
        except AccountError as exc:
            return _error(str(exc))
        print(f"revoked token {token.prefix}… of {token.user.username} ({token.name})")
        return 0


def _user_add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("username")
    p.add_argument("--brand", action="append", metavar="SLUG", help="a brand this person works for (repeatable)")
    p.add_argument("--role", action="append", choices=["admin", "supervisor", "agent", "volunteer"],
                   help="their role for the --brand before it (repeatable; one role applies to every brand)")
    p.add_argument("--owner", action="store_true", help="a site owner: every brand, manages brands and people")
    p.add_argument("--password", help="omit to be asked (or set CAREDESK_PASSWORD)")
    p.add_argument("--email", default="")
    p.add_argument("--token", action="store_true", help="also create an API token and print it")


def add_account_commands(add: AddParser, setup: Setup) -> None:
    """Register the commands; ``add(name, help)`` makes a subcommand parser that already takes ``--data-dir``."""

    def bind(func: Callable[[argparse.Namespace, Setup], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: func(args, setup)

    def group(name: str, help_text: str) -> Callable[[str, str], argparse.ArgumentParser]:
        parent = add(name, help_text, data_dir=False)
        sub = parent.add_subparsers(dest=f"{name}_command", required=True)
        return lambda cmd, text: add(cmd, text, parent=sub)

    brand = group("brand", "brands: create, list")
    p = brand("create", "create a brand")
    p.add_argument("slug")
    p.add_argument("--name", help="the brand's display name (default: the slug)")
    p.set_defaults(func=bind(cmd_brand_create))
    brand("list", "list brands").set_defaults(func=bind(cmd_brand_list))

    user = group("user", "people: add, deactivate, list")
    p = user("add", "add a person with their brands and roles")
    _user_add_arguments(p)
    p.set_defaults(func=bind(cmd_user_add))
    p = user("deactivate", "stop a person from logging in or using tokens")
    p.add_argument("username")
    p.set_defaults(func=bind(cmd_user_deactivate))
    user("list", "list people and their roles").set_defaults(func=bind(cmd_user_list))

    token = group("token", "API tokens: create, list, revoke")
    p = token("create", "create an API token for a person")
    p.add_argument("username")
    p.add_argument("--name", default="default", help="what the token is for")
    p.set_defaults(func=bind(cmd_token_create))
    p = token("list", "list tokens (their first characters only)")
    p.add_argument("username", nargs="?")
    p.set_defaults(func=bind(cmd_token_list))
    p = token("revoke", "revoke a token by its first characters")
    p.add_argument("prefix")
    p.set_defaults(func=bind(cmd_token_revoke))

    p = add("createuser", "the same as 'caredesk user add'")
    _user_add_arguments(p)
    p.set_defaults(func=bind(cmd_user_add))
