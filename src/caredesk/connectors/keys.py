"""``caredesk keys generate`` and ``caredesk keys rotate``: the connector-credential keys."""

from __future__ import annotations

import argparse
import sys

from caredesk.cli.registry import AddParser, Setup


def cmd_generate(args: argparse.Namespace) -> int:
    from caredesk.connectors.crypto import generate_key

    print(generate_key())
    return 0


def cmd_rotate(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from django.db import transaction
        from tqdm import tqdm

        from caredesk.connectors.actions import do_rotate_credentials
        from caredesk.connectors.crypto import CredentialsUnreadable
        from caredesk.connectors.models import ConnectorInstallation

        ids = list(
            ConnectorInstallation.objects.exclude(credentials_encrypted="").order_by("pk").values_list("pk", flat=True)
        )
        rotated, unreadable = 0, []
        for pk in tqdm(ids, desc="re-encrypting", unit="installation", disable=args.quiet or not ids):
            try:
                with transaction.atomic():
                    installation = ConnectorInstallation.objects.select_for_update().get(pk=pk)
                    do_rotate_credentials(installation)
                rotated += 1
            except CredentialsUnreadable:
                unreadable.append(pk)
        print(f"re-encrypted the credentials of {rotated} installation(s) with the newest key")
        if unreadable:
            print(f"error: {len(unreadable)} installation(s) could not be decrypted with any key: "
                  f"{', '.join(map(str, unreadable))}", file=sys.stderr)
            return 1
        return 0


def add_key_commands(add: AddParser, setup: Setup) -> None:
    group = add("keys", "connector credential keys: generate, rotate", data_dir=False)
    sub = group.add_subparsers(dest="keys_command", required=True)
    p = add("generate", "print a new key to put first in CAREDESK_CREDENTIALS_KEYS", parent=sub, data_dir=False)
    p.set_defaults(func=cmd_generate)
    p = add("rotate", "re-encrypt every installation's credentials with the newest key", parent=sub)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=lambda args: cmd_rotate(args, setup))
