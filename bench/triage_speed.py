"""Rough throughput and latency figures for triage (rules + the shipped model) on one core.

    taskset -c 0 python bench/triage_speed.py [--posts 50000] [--batch 5000] [--no-pii] [--freeze] [--airline DATA]

Figures printed:

* ``columnar_posts_per_s_batched``: ``classify_batch`` over batches of ``--batch`` posts. Every decision and score
  (complaint, needs_reply, sentiment, topic, urgency, priority, spam), the PII spans and the language of every post,
  as the columns of a ``TriageBatch``; no reasons and no per-post result objects (what ``caredesk triage predict``
  writes).
* ``full_posts_per_s_batched``: ``classify`` over the same batches: all of the above plus the reasons, as one
  ``TriageResult`` per post (what ingest stores).
* ``single_p50_ms`` / ``single_p99_ms``: ``classify_one`` latency, one post at a time, full result.

Throughput is the best of three rounds (other load only ever slows a run down). Posts are the written examples
(seed and written files) with varied followers, handles and PII, repeated to the requested count, or with
``--airline`` the 14,640 airline tweets of the evaluation data (longer, and fixed: the written examples grow with
the training data); figures vary with post length and machine, so compare runs on the same machine only.
``--freeze`` calls ``gc.freeze()`` after warm-up, as a long-running worker may (the library never does).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from caredesk.triage import classify, classify_batch, classify_one
from caredesk.triage.training.build import load_examples
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
    """The written examples (seed and written files), with PII/URL/emoji suffixes unless ``with_extras`` is false."""
    texts = [e.text for e in load_examples() if e.source in ("seed", "written")]
    return posts_from(texts, count, _EXTRA if with_extras else ("",))


def airline_posts(count: int, data: str | None) -> list[PostSignals]:
    """Real tweets to airlines (about 104 characters, with handles, links and typos), as written: a workload that
    does not change when the training examples do. Evaluation-only data, read from ``data`` at run time."""
    from _evaldata import data_dir, load_airline  # bench/ is on the path when this runs as a script or a module

    tweets, _stats = load_airline(data_dir(data))
    return posts_from([t.text for t in tweets], count, ("",))


def posts_from(texts: Sequence[str], count: int, extras: Sequence[str]) -> list[PostSignals]:
    """``count`` posts cycling through ``texts`` and ``extras``, with varied followers, contacts and channels."""
    posts = []
    for i in range(count):
        posts.append(
            PostSignals(
                text=texts[i % len(texts)] + extras[i % len(extras)],
                author_followers=(i * 7919) % 200_000,
                prior_contacts=i % 3,
                is_direct=i % 10 == 0,
                brand_handles=("NimbusCare",),
                author_handle=f"user{i}",
            )
        )
    return posts


def throughput(triage: Callable[[Sequence[PostSignals]], Any], posts: Sequence[PostSignals], batch: int,
               rounds: int = 3) -> float:
    """Posts per second, best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(0, len(posts), batch):
            triage(posts[i : i + batch])
        best = min(best, time.perf_counter() - start)
    return len(posts) / best


def run(posts: Sequence[PostSignals], batch: int, singles: int) -> dict[str, float]:
    columnar = throughput(classify_batch, posts, batch)
    full = throughput(classify, posts, batch)
    latencies = []
    for post in posts[:singles]:
        t0 = time.perf_counter()
        classify_one(post)
        latencies.append(time.perf_counter() - t0)
    latencies.sort()
    return {
        "columnar_posts_per_s_batched": columnar,
        "full_posts_per_s_batched": full,
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
    parser.add_argument(
        "--airline",
        metavar="DATA",
        help="time real airline tweets from DATA/airline-sentiment instead of the written examples "
        "('-': $CAREDESK_DATA or ../shared/data)",
    )
    args = parser.parse_args(argv)
    if args.airline:
        posts = airline_posts(args.posts, None if args.airline == "-" else args.airline)
    else:
        posts = sample_posts(args.posts, with_extras=not args.no_pii)
    # Warm up: loads the model and builds the tables.
    classify(posts[: args.batch])
    classify_batch(posts[: args.batch])
    if args.freeze:
        gc.collect()
        gc.freeze()
    figures = run(posts, args.batch, args.singles)
    for name, value in figures.items():
        print(f"{name}: {value:,.2f}")


if __name__ == "__main__":
    main()
