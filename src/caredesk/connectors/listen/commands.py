"""``caredesk listen``, and ``caredesk connector payloads|retry`` (what streams and webhooks delivered)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable

from caredesk.cli.context import CommandError
from caredesk.cli.registry import AddParser, Setup


def cmd_listen(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from caredesk.connectors.listen.runner import Listener

        # Logs go where caredesk's logging settings send them (CAREDESK_LOG_LEVEL); --quiet keeps warnings only.
        if args.quiet:
            logging.getLogger("caredesk.connectors").setLevel(logging.WARNING)
        listener = Listener(lease_seconds=args.lease_seconds, scan_seconds=args.scan_seconds)

        def _stop(signum: int, frame: object) -> None:
            listener.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        print(f"listening as {listener.holder}", flush=True)
        listener.run()
    return 0


def _preview(body: bytes | memoryview, width: int = 80) -> str:
    text = " ".join(bytes(body[: width * 4]).decode("utf-8", errors="replace").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def cmd_payloads(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from caredesk.connectors.models import RawPayload

        rows = RawPayload.objects.select_related("installation").order_by("-pk")
        if args.failed:
            rows = rows.filter(status=RawPayload.Status.FAILED)
        if args.installation:
            rows = rows.filter(installation_id=args.installation)
        listed = list(rows[: args.limit])
        if not listed:
            print("no failed payloads" if args.failed else "no payloads")
        for p in listed:
            print(f"{p.pk}\t{p.installation.name}\t{p.source}\t{p.status}\tattempts={p.attempts}\t"
                  f"{p.received_at.isoformat()}\t{len(p.body)} bytes")
            if p.error:
                print(f"\terror: {p.error.splitlines()[0] if p.error.strip() else p.error}")
            if args.body:
                print(f"\tbody: {_preview(p.body)}")
    return 0


def cmd_retry(args: argparse.Namespace, setup: Setup) -> int:
    if not args.ids and not args.all_failed:
        raise CommandError("name payload ids, or --all-failed")
    with setup(args):
        from datetime import UTC, datetime

        from caredesk.connectors.models import RawPayload
        from caredesk.connectors.processing import process_payload

        if args.all_failed:
            ids = list(RawPayload.objects.filter(status=RawPayload.Status.FAILED).order_by("pk")
                       .values_list("pk", flat=True))
        else:
            ids = list(args.ids)
            known = set(RawPayload.objects.filter(pk__in=ids).values_list("pk", flat=True))
            missing = [i for i in ids if i not in known]
            if missing:
                raise CommandError(f"no payload {', '.join(map(str, missing))}")
        failed = 0
        for payload_id in ids:
            outcome = process_payload(payload_id, datetime.now(UTC))
            line = f"payload {payload_id}: {outcome}"
            if outcome == "failed":
                failed += 1
                line += f": {RawPayload.objects.get(pk=payload_id).error.splitlines()[0]}"
            print(line)
        if not ids:
            print("no failed payloads")
        if failed:
            print(f"{failed} of {len(ids)} failed again", file=sys.stderr)
            return 1
    return 0


def add_runtime_commands(add: AddParser, setup: Setup, command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """``listen`` at the top level; ``payloads`` and ``retry`` through ``command`` (the ``connector`` group)."""
    p = add("listen", "hold the stream connections of every streaming connector (run one or more, anywhere)")
    p.add_argument("--lease-seconds", type=float, default=10.0,
                   help="how long a killed listener's streams wait before another listener takes them over")
    p.add_argument("--scan-seconds", type=float, default=2.0, help="how often to look for streams to take")
    p.add_argument("--quiet", action="store_true", help="log only problems, not connections and takeovers")
    p.set_defaults(func=lambda args: cmd_listen(args, setup))

    p = command("payloads", "list what streams and webhooks delivered, newest first")
    p.add_argument("--failed", action="store_true", help="only those whose processing failed")
    p.add_argument("--installation", type=int, help="only this installation's (its id)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--body", action="store_true", help="show the start of each body")
    p.set_defaults(func=lambda args: cmd_payloads(args, setup))
    p = command("retry", "process stored payloads again (failed ones); exit 1 if some fail again")
    p.add_argument("ids", nargs="*", type=int, metavar="ID")
    p.add_argument("--all-failed", action="store_true", help="every failed payload")
    p.set_defaults(func=lambda args: cmd_retry(args, setup))
