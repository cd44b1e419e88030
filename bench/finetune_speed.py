"""Speed of a brand model trained with ``--fine-tune``, used the way ingest uses it, on one core.

    python bench/finetune_speed.py [--posts 2000] [--singles 300] [--data DIR]

Fine-tunes a sentiment model on 32 short written posts (a few seconds, both cores; the speed of a fine-tuned model
does not depend on how much it was trained on), then times ``classify_batch(posts, model=bundle)`` and
``classify_one`` on the airline tweets pinned to CPU 0. Needs the semantic extra and PyTorch. Prints
``name: value`` lines and the model file's size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from _evaldata import data_dir, load_airline  # noqa: I001 - a sibling script module

from caredesk.triage import classify_batch, classify_one
from caredesk.triage.model.bundle import ModelBundle
from caredesk.triage.training.train import train_model
from caredesk.triage.types import PostSignals

TEXTS = ["my internet is down again", "great service, thanks", "bill is wrong, refund me", "love the new app"] * 8
LABELS = ["negative", "positive", "negative", "positive"] * 8


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=2_000)
    parser.add_argument("--singles", type=int, default=300)
    parser.add_argument("--data", help="folder with airline-sentiment/ (default: $CAREDESK_DATA or ../shared/data)")
    args = parser.parse_args(argv)
    bundle = ModelBundle({"sentiment": train_model(TEXTS, LABELS, "sentiment", fine_tune=True)})
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    tweets, _stats = load_airline(data_dir(args.data))
    posts = [PostSignals(text=t.text) for t in tweets[: args.posts]]
    classify_batch(posts[:64], model=bundle)  # loads both encoders
    started = time.perf_counter()
    classify_batch(posts, model=bundle)
    print(f"fine_tuned_posts_per_s_batched: {len(posts) / (time.perf_counter() - started):,.1f}")
    latencies = []
    for post in posts[: args.singles]:
        started = time.perf_counter()
        classify_one(post, model=bundle)
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    print(f"single_p50_ms: {1000 * statistics.median(latencies):.2f}")
    print(f"single_p99_ms: {1000 * latencies[int(0.99 * (len(latencies) - 1))]:.2f}")
    print(f"model_file_mb: {len(bundle.to_bytes()) / 1e6:.1f}")


if __name__ == "__main__":
    main()
