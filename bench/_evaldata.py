"""The evaluation data sets of the triage benchmarks, read from ``../shared/data`` (never copied into the repo).

Airline sentiment and the twcs support threads are CC BY-NC-SA: evaluation only.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from caredesk.triage.rules.topics import DEFAULT_TOPICS

REPO = Path(__file__).resolve().parents[1]
SENTIMENTS = ("negative", "neutral", "positive")
VADER_THRESHOLD = 0.05  # the thresholds VADER's authors recommend for compound scores

# Airline negative reasons → DEFAULT_TOPICS keys. The default taxonomy has no travel topics: disruption of what
# was booked (late or cancelled flight, lost or damaged bags, booking problems) is "delivery" by the convention in
# MODEL_CARD.md (the delivery keywords include flight, delayed, luggage, booking); service quality has no topic
# of its own and is "other". "Can't Tell" rows are left out.
TOPIC_MAP = {
    "Late Flight": "delivery",
    "Cancelled Flight": "delivery",
    "Lost Luggage": "delivery",
    "Damaged Luggage": "delivery",
    "Flight Booking Problems": "delivery",
    "Customer Service Issue": "other",
    "Bad Flight": "other",
    "Flight Attendant Complaints": "other",
    "longlines": "other",
}
assert set(TOPIC_MAP.values()) <= set(DEFAULT_TOPICS)


# --- data ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tweet:
    text: str
    sentiment: str
    reason: str  # negativereason; "" for non-negative tweets


@dataclass(frozen=True)
class Inbound:
    text: str
    needs_reply: bool
    is_reply: bool
    brand: str
    conversation: str


def data_dir(arg: str | None) -> Path:
    return Path(arg or os.environ.get("CAREDESK_DATA") or REPO.parent / "shared" / "data").resolve()


def load_airline(root: Path) -> tuple[list[Tweet], dict[str, int]]:
    """Rows of Tweets.csv, deduplicated by tweet_id and then by exact text (first row kept), so that no text can
    sit on both sides of a cross-validation split."""
    seen_ids: set[str] = set()
    seen_texts: set[str] = set()
    tweets: list[Tweet] = []
    rows = 0
    with open(root / "airline-sentiment" / "Tweets.csv", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            rows += 1
            if row["tweet_id"] in seen_ids or row["text"] in seen_texts:
                continue
            seen_ids.add(row["tweet_id"])
            seen_texts.add(row["text"])
            tweets.append(Tweet(row["text"], row["airline_sentiment"], row["negativereason"]))
    return tweets, {"rows": rows, "kept": len(tweets)}


def load_twcs(root: Path) -> tuple[list[Inbound], dict[str, int]]:
    """Needs-reply labels for inbound customer tweets of the twcs head-5000 subset.

    Kept: inbound tweets whose conversation is complete (every referenced tweet id is inside the subset), so that
    "no brand reply" is not an artefact of cutting the file. Label: True when at least one of the tweet's direct
    responses is a brand tweet (inbound = False), else False.
    """
    folder = root / "twcs-sample"
    with open(folder / "twcs_head5000.csv", encoding="utf-8", newline="") as fh:
        rows = {r["tweet_id"]: r for r in csv.DictReader(fh)}
    with open(folder / "twcs_head5000_conversations.csv", encoding="utf-8", newline="") as fh:
        conversations = {r["tweet_id"]: r for r in csv.DictReader(fh)}
    brand_of: dict[str, str] = {}
    for r in rows.values():
        if r["inbound"] == "False":
            brand_of.setdefault(conversations[r["tweet_id"]]["conversation_id"], r["author_id"])
    posts: list[Inbound] = []
    inbound = incomplete = 0
    for r in rows.values():
        if r["inbound"] != "True":
            continue
        inbound += 1
        conv = conversations[r["tweet_id"]]
        if conv["conversation_complete"] != "True":
            incomplete += 1
            continue
        responses = [rows[x] for x in r["response_tweet_id"].split(",") if x in rows]
        posts.append(
            Inbound(
                text=r["text"],
                needs_reply=any(x["inbound"] == "False" for x in responses),
                is_reply=bool(r["in_response_to_tweet_id"]),
                brand=brand_of.get(conv["conversation_id"], ""),
                conversation=conv["conversation_id"],
            )
        )
    return posts, {"inbound": inbound, "incomplete_conversation": incomplete, "kept": len(posts)}


def stratified_sample(labels: Sequence[Any], n: int, seed: int) -> list[int]:
    """Indices of a class-stratified random subset of size ~n (for --quick)."""
    rng = np.random.default_rng(seed)
    by_class: dict[Any, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    keep: list[int] = []
    for idx in by_class.values():
        k = max(2, round(n * len(idx) / len(labels)))
        keep.extend(rng.choice(idx, size=min(k, len(idx)), replace=False).tolist())
    return sorted(keep)
