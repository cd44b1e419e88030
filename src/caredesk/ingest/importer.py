"""``caredesk ingest FILE``: import a JSONL or CSV file through the normal ingest path, in batches.

Each batch is its own transaction, so a failure late in a large file keeps everything before it; malformed
records are reported by line and skipped, never aborting the import.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from django.db import transaction
from tqdm import tqdm

from caredesk.accounts.actions import do_create_brand
from caredesk.cases.actions import ReceiveReport
from caredesk.connectors.actions import do_create_installation, do_record_import
from caredesk.connectors.base import ConnectorError, NormalizedPost, RejectedRecord
from caredesk.connectors.builtin.file import FileProvider
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.runtime import get_provider
from caredesk.ingest.pipeline import ingest_posts

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


def _store(installation_id: int, platform: str, posts: list[NormalizedPost]) -> ReceiveReport:
    now = datetime.now(UTC)
    with transaction.atomic():
        installation = ConnectorInstallation.objects.select_for_update().select_related("brand").get(
            pk=installation_id
        )
        report = ingest_posts(installation, platform, posts, now)
        do_record_import(installation, report.received, now)
    return report


def run_import(
    records: Iterator[tuple[int, NormalizedPost | RejectedRecord]],
    installation: ConnectorInstallation,
    platform: str,
    batch_size: int,
    bar: tqdm | None = None,  # type: ignore[type-arg]
) -> ImportSummary:
    summary = ImportSummary()
    batch: list[NormalizedPost] = []
    for _, item in records:
        if isinstance(item, RejectedRecord):
            summary.rejected.append(item)
        else:
            batch.append(item)
        if len(batch) >= batch_size:
            summary.add(_store(installation.pk, platform, batch))
            batch = []
        if bar is not None:
            bar.update(1)
    if batch:
        summary.add(_store(installation.pk, platform, batch))
    return summary


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
) -> int:
    """Returns the exit code: 0 all imported, 1 some records rejected (the rest imported), 2 nothing usable."""
    if batch_size < 1:
        print("error: --batch-size must be at least 1", file=err)
        return 2
    if not path.is_file():
        print(f"error: no such file: {path}", file=err)
        return 2
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
        return 2
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
    return 1 if summary.rejected else 0
