"""``caredesk ingest FILE``: import a JSONL or CSV file through the normal ingest path, in batches.

Each batch is its own transaction, so a failure late in a large file keeps everything before it; malformed
records are reported by line and skipped, never aborting the import.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from django.db import DatabaseError, transaction
from tqdm import tqdm

from caredesk.accounts.actions import do_create_brand
from caredesk.cases.actions import ReceiveReport
from caredesk.connectors.actions import do_create_installation, do_record_import, lock_installation
from caredesk.connectors.base import ConnectorError, NormalizedPost, RejectedRecord
from caredesk.connectors.builtin.file import FileProvider
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.runtime import get_provider
from caredesk.ingest.pipeline import ingest_posts
from caredesk.triage.text.tokens import replace_lone_surrogates

EXIT_ALL_STORED = 0
EXIT_SOME_REJECTED = 1
EXIT_COULD_NOT_RUN = 2
# Rejections printed one by one before only counting the rest.
MAX_REJECTIONS_SHOWN = 50


@dataclass
class ImportSummary:
    received: int = 0
    duplicates: int = 0
    own_posts: int = 0
    spam: int = 0
    cases_created: int = 0
    rejected: list[RejectedRecord] = field(default_factory=list)

    def add(self, report: ReceiveReport) -> None:
        self.received += report.received
        self.duplicates += report.duplicates
        self.own_posts += report.own_posts
        self.spam += report.spam
        self.cases_created += report.cases_created


def _count_lines(path: Path) -> int | None:
    try:
        opener = gzip.open if path.suffix.lower() == ".gz" else open
        with opener(path, "rb") as fh:
            return sum(1 for _ in fh)
    except OSError:
        return None


def _file_installation(brand_slug: str, platform: str) -> ConnectorInstallation:
    with transaction.atomic():
        brand = do_create_brand(brand_slug.replace("-", " ").title(), brand_slug)
        name = f"file import ({platform})"
        installation = ConnectorInstallation.objects.filter(brand=brand, name=name).first()
        return installation or do_create_installation(brand, "file", name, {"platform": platform})


def _store_batch(installation_id: int, platform: str, posts: Sequence[NormalizedPost]) -> ReceiveReport:
    now = datetime.now(UTC)
    with transaction.atomic():
        installation = lock_installation(installation_id)
        report = ingest_posts(installation, platform, posts, now)
        do_record_import(installation, report.received, now)
    return report


def _store(
    installation_id: int, platform: str, posts: list[tuple[int, NormalizedPost]], summary: ImportSummary
) -> None:
    """Store a batch in one transaction. Should the database still refuse it (a record the parser let through
    that PostgreSQL cannot hold), the batch is halved until the one record at fault is found and rejected with
    the database's reason; every other record is stored, once."""
    try:
        summary.add(_store_batch(installation_id, platform, [post for _, post in posts]))
        return
    except (DatabaseError, ValueError, OverflowError) as exc:
        if len(posts) == 1:
            line, post = posts[0]
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            summary.rejected.append(RejectedRecord(line, f"the database refused it: {reason}", raw=dict(post.raw)))
            return
    middle = len(posts) // 2
    _store(installation_id, platform, posts[:middle], summary)
    _store(installation_id, platform, posts[middle:], summary)


def run_import(
    records: Iterator[tuple[int, NormalizedPost | RejectedRecord]],
    installation: ConnectorInstallation,
    platform: str,
    batch_size: int,
    bar: tqdm | None = None,  # type: ignore[type-arg]
) -> ImportSummary:
    summary = ImportSummary()
    batch: list[tuple[int, NormalizedPost]] = []
    for line, item in records:
        if isinstance(item, RejectedRecord):
            summary.rejected.append(item)
        else:
            batch.append((line, item))
        if len(batch) >= batch_size:
            _store(installation.pk, platform, batch, summary)
            batch = []
        if bar is not None:
            bar.update(1)
    if batch:
        _store(installation.pk, platform, batch, summary)
    summary.rejected.sort(key=lambda r: r.position)
    return summary


def write_rejects(rejected: Sequence[RejectedRecord], out: TextIO) -> None:
    """One JSON object a line: ``line``, ``reason`` and ``record`` (the text as read, or its fields)."""
    for item in rejected:
        record = item.raw
        if isinstance(record, str):
            record = replace_lone_surrogates(record)
        out.write(json.dumps({"line": item.position, "reason": item.reason, "record": record},
                             ensure_ascii=True, default=str) + "\n")


def import_file(
    path: Path,
    *,
    brand_slug: str,
    file_format: str | None,
    batch_size: int,
    platform: str,
    progress: bool = True,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    rejects: Path | None = None,
) -> int:
    """Returns the exit code: 0 every record stored (or already known), 1 some records rejected (every other one
    stored), 2 the import could not run (no file, an unusable file, bad arguments). With ``rejects`` every
    rejected record is written there (see :func:`write_rejects`)."""
    if batch_size < 1:
        print("error: --batch-size must be at least 1", file=err)
        return EXIT_COULD_NOT_RUN
    if not path.is_file():
        print(f"error: no such file: {path}", file=err)
        return EXIT_COULD_NOT_RUN
    installation = _file_installation(brand_slug, platform)
    provider = get_provider(installation)
    assert isinstance(provider, FileProvider)
    total = _count_lines(path) if progress else None
    try:
        records = provider.iter_records(path, file_format)  # type: ignore[arg-type]
        with tqdm(total=total, unit="line", disable=not progress, file=err, desc=path.name) as bar:
            summary = run_import(records, installation, platform, batch_size, bar)
    except ConnectorError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_COULD_NOT_RUN
    if rejects is not None:
        try:
            with rejects.open("w", encoding="utf-8") as fh:
                write_rejects(summary.rejected, fh)
        except OSError as exc:
            print(f"error: cannot write {rejects}: {exc.strerror}", file=err)
            return EXIT_COULD_NOT_RUN
    for rejected in summary.rejected[:MAX_REJECTIONS_SHOWN]:
        print(f"{path.name}:{rejected.position}: rejected: {rejected.reason}", file=err)
    if len(summary.rejected) > MAX_REJECTIONS_SHOWN:
        print(f"… and {len(summary.rejected) - MAX_REJECTIONS_SHOWN} more rejected records", file=err)
    print(
        f"imported {summary.received} posts into brand {brand_slug!r}: {summary.cases_created} new cases, "
        f"{summary.duplicates} already known, {summary.own_posts} our own, {summary.spam} spam; "
        f"{len(summary.rejected)} records rejected",
        file=out,
    )
    if rejects is not None and summary.rejected:
        print(f"{len(summary.rejected)} rejected records written to {rejects}", file=err)
    return EXIT_SOME_REJECTED if summary.rejected else EXIT_ALL_STORED
