"""``caredesk connector …``: add, list, test, enable and disable a brand's platform connections.

``budget`` sets the monthly budget, the reply reserve and the connection's own prices; ``list`` shows the rung of
the listening ladder each connection uses (and why not a higher one) and what it costs. ``add`` checks the
credentials with the platform (``whoami``) before anything is stored, and takes the brand's own account ids and
handles from the answer; ``test`` asks the platform again and fetches once without storing. The
network is never called inside a transaction. Refusals print ``error: …`` and exit 2; a platform that cannot be
reached exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
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
        from caredesk.connectors.registry import providers
        from caredesk.connectors.setup import PlatformUnreachable, SetupRefused, add_connection

        notice = getattr(providers().get(args.provider), "setup_notice", "")
        if notice:
            print(f"note: {notice}", file=sys.stderr)

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


def _cost_column(health: dict[str, Any]) -> str:
    if health["cost_month"] in (None, "0.00") and health["budget"] is None:
        return "no cost"
    budget = f"budget ${health['budget']}" if health["budget"] is not None else "no budget"
    return f"${health['cost_month']} this month, forecast ${health['forecast_month']}, {budget}"


def cmd_list(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from caredesk.connectors.health import connectors_health
        from caredesk.connectors.models import ConnectorInstallation

        rows = list(ConnectorInstallation.objects.select_related("brand").order_by("brand__slug", "name")
                    .filter(**({"brand__slug": args.brand} if args.brand else {})))
        health = connectors_health(rows)
        if args.json:
            print(json.dumps([{"id": i.pk, "brand": i.brand.slug, "name": i.name, "provider": i.provider_key,
                               "enabled": i.enabled, **health[i.pk]} for i in rows], indent=2))
            return 0
        for i in rows:
            h = health[i.pk]
            state = "enabled" if i.enabled else "disabled"
            last = i.last_success_at.strftime("%Y-%m-%d %H:%M UTC") if i.last_success_at else "never"
            error = f"\t{i.last_error.splitlines()[0][:100]}" if i.last_error else ""
            print(f"{i.brand.slug}\t{i.name}\t{i.provider_key}\t{state}\t{i.health}\tby {h['rung']}\t"
                  f"last ok {last}\t{i.posts_received} posts\t{_cost_column(h)}{error}")
            for reason in h["rung_reasons"]:
                print(f"\tnot {reason}")
            if h["reads_stopped"]:
                print(f"\t{h['reads_stopped_reason']}")
        return 0


def _prices(items: list[str]) -> dict[str, Any]:
    """``OPERATION=USD`` (or ``OPERATION=default``) pairs; a ValueError says which one is wrong and why."""
    from caredesk.connectors.costs.prices import MAX_PRICE, PRICE_PLACES, parse_usd

    prices: dict[str, Any] = {}
    for item in items:
        operation, sep, amount = item.partition("=")
        if not sep or not operation.strip() or not amount.strip():
            raise ValueError(f"--price {item!r}: give OPERATION=USD, like post_read=0.004 (or post_read=default)")
        amount = amount.strip()
        prices[operation.strip()] = None if amount == "default" else parse_usd(
            amount, f"--price {operation.strip()}", places=PRICE_PLACES, maximum=MAX_PRICE)
    return prices


def budget_lines(installation: Any) -> list[str]:
    """What an installation's budget and prices are now, for the operator."""
    from caredesk.connectors.costs.ledger import price_table
    from caredesk.connectors.registry import get_provider_class

    budget = installation.monthly_budget
    if budget is None:
        lines = [f"{installation.name}: no monthly budget"]
    else:
        reserve = installation.reply_reserve
        lines = [f"{installation.name}: monthly budget ${budget:.2f}, reply reserve ${reserve:.2f} "
                 f"(reads stop at ${budget - reserve:.2f}, replies at ${budget:.2f})"]
    from caredesk.connectors.base import ConnectorError

    try:
        table = price_table(installation)
        declared = get_provider_class(installation.provider_key).prices
    except ConnectorError as exc:
        return [*lines, f"prices: {exc}"]
    if table is None or declared is None:
        return [*lines, "prices: this platform charges nothing"]
    for operation, price in sorted(table.prices.items()):
        own = operation.value in (installation.price_overrides or {})
        lines.append(f"  {operation.value}: ${price}" + (f" (own price; default ${declared.price(operation)})"
                                                           if own else ""))
    return lines


def cmd_budget(args: argparse.Namespace, setup: Setup) -> int:
    if not (args.monthly is not None or args.none or args.reserve is not None or args.price):
        return _error("give --monthly USD or --none, and/or --reserve USD and --price OPERATION=USD")
    from caredesk.connectors.costs.prices import parse_usd  # pure: the input is checked before any database

    try:
        monthly = parse_usd(args.monthly, "--monthly") if args.monthly is not None else None
        reserve = parse_usd(args.reserve, "--reserve") if args.reserve is not None else None
        prices = _prices(args.price or [])
    except ValueError as exc:
        return _error(str(exc))
    with setup(args):
        from django.db import transaction

        from caredesk.connectors.actions import lock_installation
        from caredesk.connectors.base import ConnectorError
        from caredesk.connectors.costs.ledger import do_set_budget, do_set_prices

        try:
            found = _find(args.name, args.brand)
        except ValueError as exc:
            return _error(str(exc))
        try:
            with transaction.atomic():  # all or nothing: a bad price leaves the budget as it was too
                installation = lock_installation(found.pk)
                if monthly is not None or args.none or reserve is not None:
                    budget = None if args.none else (monthly if monthly is not None else installation.monthly_budget)
                    kept = installation.reply_reserve if budget is not None else Decimal(0)
                    do_set_budget(installation, budget, reserve if reserve is not None else kept)
                if prices:
                    do_set_prices(installation, prices)
        except ConnectorError as exc:
            return _error(str(exc))
        for line in budget_lines(installation):
            print(line)
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


def _write_credentials(out: Path, credentials: Mapping[str, Any]) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(dict(credentials), f)


def _pasted(prompt: str) -> str:
    return sys.stdin.readline().strip() if not sys.stdin.isatty() else input(prompt).strip()


def cmd_authorize(args: argparse.Namespace, setup: Setup) -> int:
    """A platform's OAuth for an admin at a terminal. Mastodon: register caredesk on the server, open the page
    where the brand's account allows it, paste the code back; the credentials go to ``--out`` (mode 600) for
    ``caredesk connector add mastodon --credentials @FILE``. X: see :func:`_authorize_x`."""
    import httpx

    from caredesk.connectors.base import ConnectorError
    from caredesk.connectors.builtin.mastodon import oauth

    if args.provider == "x":
        return _authorize_x(args, setup)
    if args.provider == "reddit":
        return _authorize_reddit(args)
    if args.provider != "mastodon":
        return _error(f"{args.provider!r} has no authorization flow here: give its credentials to 'connector add' "
                      "(Bluesky: an app password)")
    if not args.instance or not args.out:
        return _error("give --instance (the brand's server) and --out (a new file for the credentials)")
    out = Path(args.out)
    if out.exists():
        return _error(f"{out} exists; give another --out")
    try:
        with httpx.Client(timeout=20) as http:
            app = oauth.register_app(http, args.instance)
            print("Open this page, log in as the brand's account, allow caredesk, and paste the code shown:")
            print(oauth.authorize_url(args.instance, app.client_id))
            code = _pasted("code: ")
            if not code:
                return _error("no code given")
            credentials = oauth.exchange_code(http, args.instance, app, code)
    except (ConnectorError, ValueError) as exc:
        return _error(str(exc), EXIT_FAILED)
    _write_credentials(out, credentials.to_storage())
    print(f"credentials written to {out}; next: caredesk connector add mastodon --brand SLUG --name NAME "
          f"--config '{{\"instance\": \"{args.instance}\"}}' --credentials @{out}")
    return 0


def _authorize_reddit(args: argparse.Namespace) -> int:
    """Reddit's OAuth for an installed or web app: the page where the brand's account allows the app, then the
    address Reddit sends the browser to (or its code) pasted back, exchanged for a permanent refresh token."""
    import secrets

    import httpx

    from caredesk.connectors.base import ConnectorError
    from caredesk.connectors.builtin.reddit import RedditConfig, oauth
    from caredesk.connectors.builtin.reddit.provider import SETUP_NOTICE

    if not args.client_id or not args.redirect_uri or not args.out:
        return _error("give --client-id and --redirect-uri (as registered for the app at reddit.com/prefs/apps) and "
                      "--out (a new file for the credentials)")
    try:
        config = RedditConfig.model_validate(_json_object(args.config, "--config"))
    except ValueError as exc:
        return _error(f"--config: {exc}")
    out = Path(args.out)
    if out.exists():
        return _error(f"{out} exists; give another --out")
    print(f"note: {SETUP_NOTICE}")
    state = secrets.token_urlsafe(16)
    try:
        with httpx.Client(timeout=20) as http:
            print("Open this page, log in as the brand's account, allow the app, and paste the address your browser "
                  "is sent to (or the code in it):")
            print(oauth.authorize_url(args.client_id, args.redirect_uri, state, auth=config.auth))
            code = oauth.code_from(_pasted("address or code: "), state)
            credentials = oauth.exchange_code(http, args.client_id, args.client_secret, code, args.redirect_uri,
                                              config.user_agent(), auth=config.auth)
    except (ConnectorError, ValueError) as exc:
        return _error(str(exc), EXIT_FAILED)
    _write_credentials(out, credentials.to_storage())
    print(f"credentials written to {out}; next: caredesk connector add reddit --brand SLUG --name NAME "
          f"--config {args.config or '...'} --credentials @{out}")
    return 0


def _authorize_x(args: argparse.Namespace, setup: Setup) -> int:
    """X's OAuth 2.0 with PKCE: print the authorize URL, read back the URL X redirected to (or its code), check
    the state, exchange the code with our verifier, ask who the tokens act as; then store them encrypted in the
    connection ``--connection`` (an existing X connection: reconnect) or write them to ``--out`` for
    ``connector add x``. The app's client id and secret come from the flags, or the connection's stored ones."""
    import httpx

    from caredesk.connectors.base import ConnectorError, RateLimited, Transient
    from caredesk.connectors.builtin.x import XConfig, XProvider, oauth
    from caredesk.connectors.crypto import CredentialsUnreadable

    if bool(args.out) == bool(args.connection):
        return _error("give --connection NAME (store the tokens in that X connection) or --out FILE, not both")
    if not args.redirect_uri:
        return _error("give --redirect-uri: the callback URL registered for the app on X's developer portal")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists():
        return _error(f"{out} exists; give another --out")
    client_id, secret = args.client_id or "", None
    if args.client_secret_file:
        try:
            secret = Path(args.client_secret_file).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            return _error(f"cannot read --client-secret-file: {exc.strerror}")
    config: dict[str, Any] = {}
    with setup(args) if args.connection else contextlib.nullcontext():
        installation = None
        if args.connection:
            try:
                installation = _find(args.connection, args.brand)
            except ValueError as exc:
                return _error(str(exc))
            if installation.provider_key != "x":
                return _error(f"{installation.name!r} is a {installation.provider_key} connection, not X")
            config = dict(installation.config)
            try:
                stored = installation.get_credentials()
            except CredentialsUnreadable:  # not with this key: the flags must say it all
                stored = {}
            client_id = client_id or str(stored.get("client_id") or "")
            secret = secret or (str(stored["client_secret"]) if stored.get("client_secret") else None)
        if args.api:
            config["api"] = args.api
        try:
            parsed = XConfig.model_validate(config)
            flow = oauth.start(client_id, args.redirect_uri, authorize_url=args.authorize_url or oauth.AUTHORIZE_URL)
            print("Open this page, log in as the brand's X account and allow caredesk; then paste the whole address "
                  "X sent your browser to (or just its code):")
            print(flow.url, flush=True)
            code = oauth.code_from(_pasted("redirect URL: "), flow.state)
            now = datetime.now(UTC)
            with httpx.Client(timeout=20) as http:
                credentials = oauth.exchange_code(http, parsed.api, client_id, secret, code, flow, now)
                identity = XProvider(parsed, credentials.to_storage(), http).whoami(now)
        except (Transient, RateLimited) as exc:
            return _error(str(exc), EXIT_FAILED)  # X did not answer: the same steps may work later
        except ConnectorError as exc:
            return _error(str(exc))
        except ValueError as exc:
            return _error(str(exc))
        who = ", ".join("@" + h for h in identity.handles)
        if installation is not None:
            from caredesk.connectors.setup import PlatformUnreachable, SetupRefused, reconnect_account

            try:
                reconnect_account(installation, credentials.to_storage())
            except SetupRefused as exc:
                return _error(str(exc))
            except PlatformUnreachable as exc:
                return _error(str(exc), EXIT_FAILED)
            print(f"{installation.name}: connected as {who}; the tokens are stored encrypted")
            return 0
    assert out is not None
    _write_credentials(out, credentials.to_storage())
    print(f"authorized as {who}; credentials written to {out}; next: caredesk connector add x --brand SLUG --name "
          f"NAME --credentials @{out}")
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

    p = command("list", "list connections with their health, the rung they listen on, and their cost")
    p.add_argument("--brand", help="only this brand's")
    p.add_argument("--json", action="store_true", help="the full health report of each, as JSON")
    p.set_defaults(func=bind(cmd_list))

    p = command("budget", "set a connection's monthly budget, reply reserve and own prices (USD)")
    p.add_argument("name")
    p.add_argument("--brand", help="the brand, where several have a connection of that name")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--monthly", metavar="USD", help="the monthly budget: reads stop before it is passed")
    group.add_argument("--none", action="store_true", help="no budget")
    p.add_argument("--reserve", metavar="USD", help="the part of the budget kept for replies (reads stop earlier)")
    p.add_argument("--price", action="append", metavar="OPERATION=USD",
                   help="this connection's own price of an operation (post_read=0.004; post_read=default undoes "
                        "it); repeat for several")
    p.set_defaults(func=bind(cmd_budget))

    p = command("configure", "change a connection's settings (e.g. its listening rules) or credentials")
    p.add_argument("name")
    p.add_argument("--brand", help="the brand, where several have a connection of that name")
    p.add_argument("--config", help="settings to change, as a JSON object or @FILE, merged over the current ones")
    p.add_argument("--credentials", help="new credentials, as a JSON object or @FILE (replacing the old ones)")
    p.add_argument("--no-check", action="store_true", help="store new credentials without asking the platform")
    p.set_defaults(func=bind(cmd_configure))

    p = command("authorize", "get credentials through the platform's own login (Mastodon OAuth, X OAuth 2.0 PKCE, "
                             "Reddit OAuth)")
    p.add_argument("provider", help="mastodon, x or reddit")
    p.add_argument("--instance", help="Mastodon: the brand's server, like https://mastodon.social")
    p.add_argument("--out", help="a new file for the credentials (written with mode 600)")
    p.add_argument("--connection", help="X: store the tokens in this existing X connection (reconnect)")
    p.add_argument("--brand", help="X: the brand, where several have a connection of that name")
    p.add_argument("--client-id", help="X and Reddit: the app's OAuth 2.0 client id (X default: the connection's)")
    p.add_argument("--client-secret", help="Reddit: the app's secret (a web app; an installed app has none)")
    p.add_argument("--client-secret-file", help="X: a file holding the app's client secret (confidential clients)")
    p.add_argument("--redirect-uri", help="X and Reddit: the callback URL registered for the app")
    p.add_argument("--config", help="Reddit: the settings JSON (or @FILE) for 'connector add' (for the User-Agent)")
    p.add_argument("--api", help="X: the API base URL (default https://api.x.com, or the connection's)")
    p.add_argument("--authorize-url", help="X: the authorize page (default https://x.com/i/oauth2/authorize)")
    p.set_defaults(func=bind(cmd_authorize))

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
