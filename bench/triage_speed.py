"""Rough throughput and latency figures for triage (rules + the shipped model, full results with reasons) on one core.

    taskset -c 0 python bench/triage_speed.py [--posts 50000] [--batch 5000] [--no-pii] [--freeze]

Posts are the written examples (seed and written files) with varied followers, handles and PII, repeated to the
requested count; figures vary with post length and machine, so compare runs on the same machine only. ``--freeze``
calls ``gc.freeze()`` after warm-up, as a long-running worker may (the library never does).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Sequence

from caredesk.triage import classify, classify_one
from caredesk.triage.build import load_examples
from caredesk.triage.types import PostSignals

_EXTRA = (
    "",
    " call me on 07700 900123",
    " acct 12345678",
    " https://t.co/abc123",
    " 😡",
    "!!!",
)


def sample_posts(count: int, with_extras: bool = True) -> list[PostSignals]:
    texts = [e.text for e in load_examples() if e.source in ("seed", "written")]
    posts = []
    for i in range(count):
        text = texts[i % len(texts)] + (_EXTRA[i % len(_EXTRA)] if with_extras else "")
        posts.append(
            PostSignals(
                text=text,
                author_followers=(i * 7919) % 200_000,
                prior_contacts=i % 3,
                is_direct=i % 10 == 0,
                brand_handles=("NimbusCare",),
                author_handle=f"user{i}",
            )
        )
    return posts


def run(posts: Sequence[PostSignals], batch: int, singles: int, rounds: int = 3) -> dict[str, float]:
    """Best of ``rounds`` for throughput (other load only ever slows a run down); latency over all singles."""
    classify(posts[:batch])  # warm: loads the model and builds the tables
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(0, len(posts), batch):
            classify(posts[i : i + batch])
        best = min(best, time.perf_counter() - start)
    latencies = []
    for post in posts[:singles]:
        t0 = time.perf_counter()
        classify_one(post)
        latencies.append(time.perf_counter() - t0)
    latencies.sort()
    return {
        "posts_per_s_batched": len(posts) / best,
        "single_p50_ms": 1000 * statistics.median(latencies),
        "single_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--singles", type=int, default=2_000)
    parser.add_argument("--no-pii", action="store_true", help="leave out the phone/account/URL suffixes")
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() after warm-up, as a worker may")
    args = parser.parse_args(argv)
    posts = sample_posts(args.posts, with_extras=not args.no_pii)
    classify(posts[:10])
    if args.freeze:
        gc.collect()
        gc.freeze()
    figures = run(posts, args.batch, args.singles)
    for name, value in figures.items():
        print(f"{name}: {value:,.2f}")


if __name__ == "__main__":
    main()
