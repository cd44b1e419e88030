"""A real worker killed with SIGKILL while replies are in flight to Bluesky and to X (the fake servers of the
providers' tests, slow to create posts and now and then losing an answer after creating one): after recovery,
each reply reached the platform exactly once, or shows *delivery unknown*; none is lost or stuck. A small run of
bench/reply_fault.py, which reports the full one for Mastodon, Bluesky and X."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from reply_fault import LEASE_SECONDS, run_provider  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


def _delete_all_jobs() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs")


@pytest.fixture(autouse=True)
def _no_jobs_around() -> Iterator[None]:
    """procrastinate's tables are not flushed between tests: the worker here must not find other tests' jobs."""
    _delete_all_jobs()
    yield
    _delete_all_jobs()


def _worker_env(tmp_path: Path) -> dict[str, str]:
    """A ``caredesk worker`` on this test's database (committed, ``transaction=True``), with a short lease."""
    params = connection.settings_dict
    auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
    host = params["HOST"]
    if host.startswith("/"):
        url = f"postgresql://{auth}@/{params['NAME']}?host={host}"
    else:
        url = f"postgresql://{auth}@{host}:{params['PORT'] or 5432}/{params['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "CAREDESK_DATA_DIR": str(tmp_path),
            "CAREDESK_REPLY_LEASE_SECONDS": str(LEASE_SECONDS), "CAREDESK_POLL_INTERVAL": "0.5"}


@pytest.mark.parametrize("provider", ["bluesky", "x"])
def test_a_worker_killed_mid_send_leaves_each_reply_published_once_or_visibly_unknown(
        provider: str, tmp_path: Path, settings: object) -> None:
    # X has no idempotency key at all: exactly once rests on looking among the brand's own posts (find_reply).
    settings.CAREDESK_REPLY_LEASE_SECONDS = LEASE_SECONDS  # type: ignore[attr-defined]
    outcome = run_provider(provider, kills=3, replies=6, seed=3, env=_worker_env(tmp_path), say=lambda line: None)
    assert (outcome.kills, outcome.queued) == (3, 6)
    assert (outcome.twice, outcome.lost, outcome.stuck) == (0, 0, 0), outcome
    assert outcome.sent + outcome.unknown + outcome.failed == 6
    assert outcome.published == outcome.sent + outcome.unknown_published
