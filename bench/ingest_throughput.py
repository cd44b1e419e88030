"""Ingest throughput: posts/s through ingest + triage + threading into cases, in batches.

    python bench/ingest_throughput.py [--posts 20000] [--batch 500]

Posts are generated from the bundled demo script's texts with fresh ids and a pool of authors, so threading,
author upserts and case creation all do real work. Prints one figure per stage.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from _db import setup_database


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--authors", type=int, default=5_000)
    args = parser.parse_args()
    setup_database()

    from django.db import transaction

    from caredesk.accounts.actions import do_create_brand
    from caredesk.connectors.actions import do_create_installation
    from caredesk.connectors.base import NormalizedAuthor, NormalizedPost
    from caredesk.connectors.builtin.replay.script import load_script
    from caredesk.connectors.models import ConnectorInstallation
    from caredesk.ingest.pipeline import ingest_posts
    from caredesk.triage import classify
    from caredesk.triage.types import PostSignals

    texts = [p.text for p in load_script(None).posts]
    rng = random.Random(7)
    brand = do_create_brand("Bench")
    installation = do_create_installation(brand, "replay", "bench", {"brand": "nimbus"},
                                          own_account_ids=["brand-bench"], own_handles=["BenchCare"])
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    posts: list[NormalizedPost] = []
    last_by_author: dict[int, str] = {}
    for i in range(args.posts):
        a = rng.randrange(args.authors)
        # A third of posts answer the same author's previous post: a thread to follow.
        parent = last_by_author.get(a, "") if rng.random() < 0.33 else ""
        pid = f"b{i}"
        posts.append(NormalizedPost(
            external_id=pid,
            author=NormalizedAuthor(f"a{a}", f"user{a}", f"User {a}", rng.randrange(20_000)),
            text=rng.choice(texts) + f" #{i}",
            created_at=t0 + timedelta(seconds=i),
            in_reply_to_external_id=parent,
        ))
        last_by_author[a] = pid

    # Triage alone, for reference.
    signals = [PostSignals(text=p.text, author_followers=p.author.followers) for p in posts]
    start = time.perf_counter()
    for i in range(0, len(signals), args.batch):
        classify(signals[i : i + args.batch])
    triage_s = time.perf_counter() - start

    batch_times: list[float] = []
    now = t0 + timedelta(days=1)
    start = time.perf_counter()
    for i in range(0, len(posts), args.batch):
        b0 = time.perf_counter()
        with transaction.atomic():
            locked = ConnectorInstallation.objects.select_for_update().select_related("brand").get(
                pk=installation.pk)
            ingest_posts(locked, "x", posts[i : i + args.batch], now)
        batch_times.append(time.perf_counter() - b0)
    total_s = time.perf_counter() - start

    # The same posts again: the idempotent path (all duplicates).
    start = time.perf_counter()
    for i in range(0, len(posts), args.batch):
        with transaction.atomic():
            locked = ConnectorInstallation.objects.select_for_update().select_related("brand").get(
                pk=installation.pk)
            ingest_posts(locked, "x", posts[i : i + args.batch], now)
    dup_s = time.perf_counter() - start

    from caredesk.cases.models import Case, Post

    print(f"posts: {len(posts)}, batch: {args.batch}, authors: {args.authors}")
    print(f"triage only:                 {len(posts) / triage_s:>10,.0f} posts/s")
    print(f"ingest + triage + cases:     {len(posts) / total_s:>10,.0f} posts/s  "
          f"(batch p50 {statistics.median(batch_times) * 1000:.0f} ms, max {max(batch_times) * 1000:.0f} ms)")
    print(f"re-ingest (all duplicates):  {len(posts) / dup_s:>10,.0f} posts/s")
    print(f"stored: {Post.objects.count()} posts, {Case.objects.count()} cases")


if __name__ == "__main__":
    main()
