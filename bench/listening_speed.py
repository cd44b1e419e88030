"""Throughput of keyword listening (:class:`caredesk.connectors.listening.KeywordMatcher`) on one core.

    taskset -c 0 python bench/listening_speed.py [--posts 100000] [--keywords 50] [--hit-rate 0.02]

Posts are synthetic, about 120 characters of mixed-language filler words (Latin, accented, Japanese), of which
``--hit-rate`` mention one of the keywords; a few of those also carry an exclusion phrase. The keywords are brand
names and phrases, some accented and some Japanese, like a real listening configuration. Prints
``posts_per_s`` (the best of three rounds: other load only ever slows a run down) and how many posts matched, so
a faster matcher that matches less is visible. A Bluesky firehose needs about 20,000 posts/s on one core.
"""

from __future__ import annotations

import argparse
import random
import time

from caredesk.connectors.listening import KeywordMatcher

_FILLER = (
    "the network was slow again today and nobody answered my call about the bill so i waited for hours "
    "internet router signal tower fibre outage weather train coffee morning evening weekend phone app update "
    "la red está caída otra vez desde esta mañana y no me dejan hablar con nadie le réseau est en panne "
    "das netz ist langsam heute abend große störung überall 今日は 回線 が 遅い です 電波 障害 駅 天気"
).split()

_BRANDS = [
    "Acme", "Acme Mobile", "AcmeCare", "Nimbus", "Nimbus Fibre", "Telefónica", "Movistar", "ドコモ", "NTTドコモ",
    "Vodafone", "Orange", "Deutsche Telekom", "Telekom", "O2", "Three", "EE", "BT Broadband", "Sky Broadband",
    "Virgin Media", "Comcast", "Xfinity", "Verizon", "T-Mobile", "AT&T", "Sprint", "Rogers", "Bell Canada",
    "Telus", "Optus", "Telstra", "Jio", "Airtel", "SoftBank", "au by KDDI", "楽天モバイル", "KT", "SK Telecom",
    "Swisscom", "Proximus", "KPN", "Telia", "Telenor", "Elisa", "Free Mobile", "Bouygues Telecom", "SFR",
    "Iliad", "Wind Tre", "TIM", "Fastweb", "MasOrange", "Digi Mobil", "Ziggo",
]


def make_posts(n: int, keywords: list[str], hit_rate: float, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    posts = []
    for _ in range(n):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < 120:
            words.append(rng.choice(_FILLER))
        if rng.random() < hit_rate:
            words.insert(rng.randrange(len(words)), rng.choice(keywords))
            if rng.random() < 0.1:
                words.append("job offer")
        posts.append(" ".join(words))
    return posts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--keywords", type=int, default=50)
    parser.add_argument("--hit-rate", type=float, default=0.02)
    args = parser.parse_args()
    keywords = _BRANDS[: args.keywords]
    posts = make_posts(args.posts, keywords, args.hit_rate)
    matcher = KeywordMatcher(keywords, exclude=["job offer", "we are hiring"])
    best = float("inf")
    matched = 0
    for _ in range(3):
        start = time.perf_counter()
        matched = sum(1 for post in posts if matcher.match(post))
        best = min(best, time.perf_counter() - start)
    mean_len = sum(map(len, posts)) / len(posts)
    print(f"posts={len(posts)} mean_chars={mean_len:.0f} keywords={len(keywords)} matched={matched}")
    print(f"posts_per_s={len(posts) / best:,.0f}")


if __name__ == "__main__":
    main()
