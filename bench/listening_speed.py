"""Keyword matching speed on one core: posts/s through ``KeywordMatcher.match``.

    taskset -c 0 python bench/listening_speed.py [--posts 100000] [--keywords 50]

Synthetic posts of about 120 characters (English words, some emoji and accents), 1% of them containing a keyword;
the matcher holds ``--keywords`` brand names and phrases plus 10 exclusions. Keyword listening on the Bluesky
firehose must keep up with at least 20,000 posts/s on one core.
"""

from __future__ import annotations

import argparse
import random
import time

from caredesk.connectors.listening import KeywordMatcher

WORDS = ("the my internet is down again since this morning please help router bill charged twice flight delayed "
         "café naïve 🙂 great service thanks outage no signal phone app crash login password order late").split()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--keywords", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(7)
    keywords = [f"brand{i}" if i % 3 else f"brand{i} fiber" for i in range(args.keywords)]
    matcher = KeywordMatcher(keywords, [f"brand{i} juice" for i in range(10)])
    posts = []
    for i in range(args.posts):
        words = [rng.choice(WORDS) for _ in range(22)]
        if i % 100 == 0:
            words.insert(rng.randrange(len(words)), rng.choice(keywords))
        posts.append(" ".join(words)[:120])
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        matched = sum(1 for post in posts if matcher.match(post))
        best = max(best, len(posts) / (time.perf_counter() - start))
    print(f"{len(posts)} posts, {args.keywords} keywords: {matched} matched; best of 3: {best:,.0f} posts/s")


if __name__ == "__main__":
    main()
