"""``caredesk retention …``: a brand's retention policy, its runs' report, and the partitions.

Refusals print ``error: …`` and exit 2, as the account commands do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from caredesk.cli.registry import AddParser, Setup

if TYPE_CHECKING:
    from caredesk.accounts.models import Brand

EXIT_REFUSED = 2


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_REFUSED


def _brand(slug: str) -> Brand | None:
    from caredesk.accounts.models import Brand

    return Brand.objects.filter(slug=slug).first()


def _policy(brand: Brand) -> str:
    if brand.retention_days is None:
        return "keep forever"
    return f"{brand.retention_action} after {brand.retention_days} days"


def cmd_set(args: argparse.Namespace, setup: Setup) -> int:
    days: int | None = None if args.forever else args.days
    if days is None and not args.forever:
        return _error("give --days N, or --forever to keep everything")
    with setup(args):
        from django.db import transaction
        from django.utils import timezone

        from caredesk.retention.actions import RetentionError, do_set_retention

        with transaction.atomic():
            brand = _brand(args.slug)
            if brand is None:
                return _error(f"no brand {args.slug!r}")
            try:
                do_set_retention(brand, days, args.action or brand.retention_action, timezone.now())
            except RetentionError as exc:
                return _error(str(exc))
        print(f"brand {brand.slug}: {_policy(brand)}")
        return 0


def cmd_show(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from caredesk.accounts.models import Brand

        for brand in Brand.objects.order_by("slug"):
            last = brand.retention_runs.order_by("-started_at").first()
            ran = f"last run {last.started_at:%Y-%m-%d %H:%M} ({last.status})" if last else "never run"
            print(f"{brand.slug}\t{_policy(brand)}\t{ran}")
        return 0


def cmd_report(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from caredesk.retention.models import RetentionRun

        runs = RetentionRun.objects.select_related("brand").order_by("-started_at", "-pk")
        if args.slug:
            if _brand(args.slug) is None:
                return _error(f"no brand {args.slug!r}")
            runs = runs.filter(brand__slug=args.slug)
        shown = list(runs[: args.last])
        if not shown:
            print("no retention run yet")
        for run in shown:
            state = run.status if run.status != "running" else f"running ({run.phase}, {run.batches} batches)"
            print(f"{run.started_at:%Y-%m-%d %H:%M}\t{run.brand.slug}\t{state}\t{run.summary()}"
                  + (f"\terror: {run.error}" if run.error else ""))
        return 0


def cmd_run(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from django.utils import timezone

        from caredesk.retention.actions import run_all, run_retention

        if args.slug:
            brand = _brand(args.slug)
            if brand is None:
                return _error(f"no brand {args.slug!r}")
            outcome = run_retention(brand, timezone.now(), batch_size=args.batch)
            if outcome is None:
                print(f"brand {brand.slug} keeps everything: nothing to do")
                return 0
            runs = [outcome.run]
        else:
            runs = run_all(timezone.now(), batch_size=args.batch)
        for run in runs:
            print(f"{run.brand.slug}: {run.summary()}")
        return 0


def cmd_partitions(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from django.db import connection, transaction
        from django.utils import timezone

        from caredesk.retention import partitions
        from caredesk.retention.tasks import maintain_partitions

        if args.ensure:
            made = maintain_partitions(timezone.now())
            print(f"made {', '.join(made)}" if made else "every partition ahead is there")
        with transaction.atomic(), connection.cursor() as cursor:
            for table in partitions.PARTITIONED:
                names = [p.name for p in partitions.list_partitions(cursor, table)]
                names.append(partitions.default_partition(table))
                for name in names:
                    cursor.execute("SELECT pg_total_relation_size(%s), (SELECT reltuples FROM pg_class "
                                   "WHERE oid = %s::regclass)", [name, name])
                    size, rows = cursor.fetchone()
                    print(f"{table}\t{name}\t~{max(0, int(rows)):,} rows\t{size / 1e6:.1f} MB")
        return 0


def add_retention_commands(add: AddParser, setup: Setup) -> None:
    def bind(func: Callable[[argparse.Namespace, Setup], int]) -> Callable[[argparse.Namespace], int]:
        return lambda args: func(args, setup)

    parent = add("retention", "retention policies: set, show, run, report, partitions", data_dir=False)
    sub = parent.add_subparsers(dest="retention_command", required=True)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return add(name, text, parent=sub)

    p = command("set", "set a brand's retention policy")
    p.add_argument("slug")
    p.add_argument("--days", type=int, help="keep platform content of closed cases this many days")
    p.add_argument("--forever", action="store_true", help="keep everything (no policy)")
    p.add_argument("--action", choices=["redact", "delete"],
                   help="redact: remove the text, keep the case; delete: remove the case (default: as before)")
    p.set_defaults(func=bind(cmd_set))
    command("show", "every brand's policy and last run").set_defaults(func=bind(cmd_show))
    p = command("run", "apply the policies now (the worker does it daily)")
    p.add_argument("slug", nargs="?", help="only this brand (default: every brand, then old partitions)")
    p.add_argument("--batch", type=int, default=500, help="cases per transaction")
    p.set_defaults(func=bind(cmd_run))
    p = command("report", "what the last runs removed")
    p.add_argument("slug", nargs="?")
    p.add_argument("--last", type=int, default=10, help="how many runs (default 10)")
    p.set_defaults(func=bind(cmd_report))
    p = command("partitions", "the monthly partitions of raw payloads, their rows and sizes")
    p.add_argument("--ensure", action="store_true", help="first make this month's and the next months'")
    p.set_defaults(func=bind(cmd_partitions))
