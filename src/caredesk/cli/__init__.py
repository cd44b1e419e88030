"""The ``caredesk`` command: a parser to which each feature adds its commands, all run in one set-up context
(:mod:`caredesk.cli.context`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from caredesk.cli.context import CommandError, _setup, django_context, setup

__all__ = ["CommandError", "_setup", "build_parser", "django_context", "main", "setup"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caredesk", description="Social customer care desk.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, help_text: str, *, parent: Any = None, data_dir: bool = True
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = (parent or sub).add_parser(name, help=help_text, description=help_text)
        if data_dir:
            p.add_argument("--data-dir", type=Path, default=None,
                           help="where the embedded database and secret key live (ignored for the database when "
                                "DATABASE_URL is set)")
        return p

    # Each feature registers its own commands; imported here, not at the top, so that a feature's command module
    # may import caredesk.cli.context without a cycle through this package.
    from caredesk.accounts.commands import add_account_commands
    from caredesk.cli.server import add_server_commands
    from caredesk.connectors.commands import add_connector_commands
    from caredesk.connectors.keys import add_key_commands
    from caredesk.ingest.commands import add_ingest_commands
    from caredesk.retention.commands import add_retention_commands
    from caredesk.triage.cli import add_triage_commands

    add_server_commands(add)
    add_account_commands(add, django_context)
    add_ingest_commands(add, django_context)
    add_key_commands(add, django_context)
    add_connector_commands(add, django_context)
    add_retention_commands(add, django_context)
    add_triage_commands(sub, setup)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
