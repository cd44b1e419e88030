"""``caredesk ingest``: import posts from a file."""

from __future__ import annotations

import argparse
from pathlib import Path

from caredesk.cli.registry import AddParser, Setup


def cmd_ingest(args: argparse.Namespace, setup: Setup) -> int:
    with setup(args):
        from caredesk.ingest.importer import import_file

        return import_file(
            Path(args.file), brand_slug=args.brand, file_format=args.format, batch_size=args.batch_size,
            platform=args.platform, progress=not args.quiet, rejects=Path(args.rejects) if args.rejects else None,
        )



def add_ingest_commands(add: AddParser, setup: Setup) -> None:
    p = add("ingest", "import posts from a JSONL or CSV file; exit 0: all stored, 1: some rejected (the rest "
               "stored), 2: could not run")
    p.add_argument("file")
    p.add_argument("--brand", default="default", help="brand slug (created if missing)")
    p.add_argument("--format", choices=["jsonl", "csv"], default=None, help="default: from the file extension")
    p.add_argument("--platform", default="x")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--rejects", metavar="FILE",
                   help="write every rejected record, with its line and reason, to FILE (JSONL)")
    p.set_defaults(func=lambda args: cmd_ingest(args, setup))


