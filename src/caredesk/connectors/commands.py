"""``caredesk connector …``: add, list, test, enable and disable a brand's platform connections.

``add`` checks the credentials with the platform (``whoami``) before anything is stored, and takes the brand's own
account ids and handles from the answer; ``test`` asks the platform again and fetches once without storing. The
network is never called inside a transaction. Refusals print ``error: …`` and exit 2; a platform that cannot be
reached exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from caredesk.cli.registry import AddParser, Setup

EXIT_FAILED = 1
EXIT_REFUSED = 2


def _error(message: str, code: int = EXIT_REFUSED) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _json_object(value: str | None, what: str) -> dict[str, Any]:
    if not value:
        return {}
    if value.startswith("@"):
        try:
            with open(value[1:], encoding="utf-8") as f:
                value = f.read()
        except OSError as exc:
            raise ValueError(f"cannot read {what} file {value[1:]!r}: {exc.strerror}") from None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{what} must be a JSON object")
    return parsed


def _find(name: str, brand_slug: str | None) -> Any:
    """The installation called ``name`` (of ``brand_slug`` when given); a ValueError says why there is none."""
    from caredesk.connectors.models import ConnectorInstallation

    found = ConnectorInstallation.objects.select_related("brand").filter(name=name)
    if brand_slug:
        found = found.filter(brand__slug=brand_slug)
    matches = list(found[:2])
    if not matches:
        raise ValueError(f"no installation called {name!r}" + (f" for brand {brand_slug}" if brand_slug else ""))
    if len(matches) > 1:
        raise ValueError(f"several brands have an installation called {name!r}: give --brand")
    return matches[0]


def cmd_add(args: argparse.Namespace, setup: Setup) -> int:
    try:
        config = _json_object(args.config, "--config")
        credentials = _json_object(args.credentials, "--credentials")
    except ValueError as exc:
        return _error(str(exc))
    with setup(args):
        from caredesk.accounts.models import Brand
        from caredesk.connectors.setup import PlatformUnreachable, SetupRefused, add_connection

        brand = Brand.objects.filter(slug=args.brand).first()
        if brand is None:
            return _error(f"no brand {args.brand!r} (caredesk brand list)")
        try:
            installation = add_connection(brand, args.provider, args.name, config, credentials,
                                          check=not args.no_check)
        except SetupRefused as exc:
            return _error(str(exc))
        except PlatformUnreachable as exc:
            return _error(str(exc), EXIT_FAILED)
        who = f" as {', '.join('@' + h for h in installation.own_handles)}" if installation.own_handles else ""
        print(f"installation {installation.name!r} ({installation.provider_key}) added for {brand.slug}{who}")
        return 0


def cmd_list(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from caredesk.connectors.models import ConnectorInstallation

        rows = ConnectorInstallation.objects.select_related("brand").order_by("brand__slug", "name")
        if args.brand:
            rows = rows.filter(brand__slug=args.brand)
        for i in rows:
            state = "enabled" if i.enabled else "disabled"
            last = i.last_success_at.strftime("%Y-%m-%d %H:%M UTC") if i.last_success_at else "never"
            error = f"\t{i.last_error.splitlines()[0][:100]}" if i.last_error else ""
            print(f"{i.brand.slug}\t{i.name}\t{i.provider_key}\t{state}\t{i.health}\tlast ok {last}\t"
                  f"{i.posts_received} posts{error}")
        return 0


def _on_installation(args: argparse.Namespace, setup: Setup, action: Callable[[Any], list[str]], done: str) -> int:
    """``action`` on the installation named in ``args``: its lines printed, then ``<name>: <done>``."""
    with setup(args):
        from caredesk.connectors.setup import PlatformUnreachable, SetupRefused

        try:
            installation = _find(args.name, args.brand)
            lines = action(installation)
        except (ValueError, SetupRefused) as exc:
            return _error(str(exc))
        except PlatformUnreachable as exc:
            return _error(str(exc), EXIT_FAILED)
        for line in lines:
            print(line)
        print(f"{installation.name}: {done}")
        return 0


def cmd_test(args: argparse.Namespace, setup: Setup) -> int:
    def test(installation: Any) -> list[str]:
        from caredesk.connectors.setup import test_connection

        return test_connection(installation).lines()

    return _on_installation(args, setup, test, "ok")


def cmd_configure(args: argparse.Namespace, setup: Setup) -> int:
    try:
        config = _json_object(args.config, "--config") if args.config else None
        credentials = _json_object(args.credentials, "--credentials") if args.credentials else None
    except ValueError as exc:
        return _error(str(exc))
    if config is None and credentials is None:
        return _error("give --config (merged over the current settings) and/or --credentials (replacing them)")
    with setup(args):
        from caredesk.connectors.setup import PlatformUnreachable, SetupRefused, update_connection

        try:
            installation = update_connection(_find(args.name, args.brand), config=config, credentials=credentials,
                                             check=not args.no_check)
        except (ValueError, SetupRefused) as exc:
            return _error(str(exc))
        except PlatformUnreachable as exc:
            return _error(str(exc), EXIT_FAILED)
        changed = " and ".join(w for w, v in (("settings", config), ("credentials", credentials)) if v is not None)
        print(f"{installation.name}: {changed} changed (a running listener picks them up without a restart)")
        return 0


def cmd_authorize(args: argparse.Namespace) -> int:
    """Mastodon's OAuth for an admin at a terminal: register caredesk on the server, open the page where the
    brand's account allows it, paste the code back; the credentials go to ``--out`` (mode 600) for
    ``caredesk connector add mastodon --credentials @FILE``. Needs no database."""
    import httpx

    from caredesk.connectors.base import ConnectorError
    from caredesk.connectors.builtin.mastodon import oauth

    if args.provider != "mastodon":
        return _error(f"{args.provider!r} has no authorization flow here: give its credentials to 'connector add' "
                      "(Bluesky: an app password)")
    out = Path(args.out)
    if out.exists():
        return _error(f"{out} exists; give another --out")
    try:
        with httpx.Client(timeout=20) as http:
            app = oauth.register_app(http, args.instance)
            print("Open this page, log in as the brand's account, allow caredesk, and paste the code shown:")
            print(oauth.authorize_url(args.instance, app.client_id))
            code = sys.stdin.readline().strip() if not sys.stdin.isatty() else input("code: ").strip()
            if not code:
                return _error("no code given")
            credentials = oauth.exchange_code(http, args.instance, app, code)
    except (ConnectorError, ValueError) as exc:
        return _error(str(exc), EXIT_FAILED)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(credentials.to_storage(), f)
    print(f"credentials written to {out}; next: caredesk connector add mastodon --brand SLUG --name NAME "
          f"--config '{{\"instance\": \"{args.instance}\"}}' --credentials @{out}")
    return 0


def cmd_subscribe(args: argparse.Namespace, setup: Setup) -> int:
    def subscribe(installation: Any) -> list[str]:
        from caredesk.connectors.setup import subscribe_connection

        return subscribe_connection(installation)

    return _on_installation(args, setup, subscribe, "subscribed")


def cmd_enable(args: argparse.Namespace, setup: Setup, enabled: bool) -> int:
    with setup(args):
        from django.db import transaction

        from caredesk.connectors.actions import do_set_enabled

        try:
            installation = _find(args.name, args.brand)
        except ValueError as exc:
            return _error(str(exc))
        with transaction.atomic():
            do_set_enabled(installation, enabled)
        print(f"{installation.name}: {'enabled' if enabled else 'disabled'}")
        return 0


def add_connector_commands(add: AddParser, setup: Setup) -> None:
    def bind(func: Callable[..., int], **kw: Any) -> Callable[[argparse.Namespace], int]:
        return lambda args: func(args, setup, **kw)

    parent = add("connector", "platform connections: add, list, test, configure, enable, disable; payloads, retry",
                 data_dir=False)
    sub = parent.add_subparsers(dest="connector_command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return add(name, text, parent=sub)

    p = command("add", "connect a brand to a platform (the credentials are checked first)")
    p.add_argument("provider", help="mastodon, bluesky, rss, replay, ... (installed providers)")
    p.add_argument("--brand", required=True, help="the brand's slug")
    p.add_argument("--name", required=True, help="a name for this connection, unique within the brand")
    p.add_argument("--config", help="the provider's settings as a JSON object, or @FILE")
    p.add_argument("--credentials", help="the credentials as a JSON object, or @FILE (stored encrypted)")
    p.add_argument("--no-check", action="store_true", help="store without asking the platform first")
    p.set_defaults(func=bind(cmd_add))

    p = command("list", "list connections with their health")
    p.add_argument("--brand", help="only this brand's")
    p.set_defaults(func=bind(cmd_list))

    p = command("configure", "change a connection's settings (e.g. its listening rules) or credentials")
    p.add_argument("name")
    p.add_argument("--brand", help="the brand, where several have a connection of that name")
    p.add_argument("--config", help="settings to change, as a JSON object or @FILE, merged over the current ones")
    p.add_argument("--credentials", help="new credentials, as a JSON object or @FILE (replacing the old ones)")
    p.add_argument("--no-check", action="store_true", help="store new credentials without asking the platform")
    p.set_defaults(func=bind(cmd_configure))

    p = command("authorize", "get credentials through the platform's own login (Mastodon OAuth)")
    p.add_argument("provider", help="mastodon")
    p.add_argument("--instance", required=True, help="the brand's server, like https://mastodon.social")
    p.add_argument("--out", required=True, help="a new file for the credentials (written with mode 600)")
    p.set_defaults(func=cmd_authorize)

    for name, text, func in (
        ("test", "check the credentials and fetch once, storing nothing", bind(cmd_test)),
        ("subscribe", "make the platform deliver to this connection (X: register its webhook_url, subscribe to "
                      "the brand's activity); safe to repeat", bind(cmd_subscribe)),
        ("enable", "start listening on a connection", bind(cmd_enable, enabled=True)),
        ("disable", "stop listening on a connection (nothing is deleted)", bind(cmd_enable, enabled=False)),
    ):
        p = command(name, text)
        p.add_argument("name")
        p.add_argument("--brand", help="the brand, where several have a connection of that name")
        p.set_defaults(func=func)

    from caredesk.connectors.listen.commands import add_runtime_commands

    add_runtime_commands(add, setup, command)
