"""Throughput of the RSS provider: feed entries fetched, parsed and matched per second, from a local server.

    python bench/rss_throughput.py [--feeds 50] [--entries 200] [--keywords 50]

A real HTTP server on 127.0.0.1 (the tests' feed server) serves ``--feeds`` RSS 2.0 feeds of ``--entries``
WordPress-like items each (a title, an HTML description of about 400 characters, a guid, a date); one item in
fifty mentions a brand. Printed, each the best of three rounds (other load only ever slows a run down):

* ``entries_per_s``: a first poll of every feed (``RssProvider.fetch`` with an empty cursor: every feed answers
  200 and every entry is parsed, stripped of markup and matched), over the number of entries served;
* ``parse_only_entries_per_s``: ``feedparser.parse`` alone over the same bodies, with the provider's options,
  for how much of that is feedparser's;
* ``unchanged_poll_s``: a poll where every feed answers 304.

The server runs in the same process and shares its interpreter lock, so ``entries_per_s`` is on the low side
of what a worker fetching from real servers gets. Figures vary with machine and load: compare runs on the same
machine only.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "connectors" / "rss"))

from rss_feed_server import Route, running  # noqa: E402

from caredesk.connectors.builtin.rss import RssConfig, RssProvider  # noqa: E402

_WORDS = ("network broadband fibre mobile outage engineers customers regulator price rollout tower router "
          "signal coverage rural city council contract spectrum auction investors quarter results").split()
_BRANDS = [f"Brand{n}" for n in range(49)] + ["Nimbus"]


def feed_body(feed: int, entries: int, rng: random.Random) -> bytes:
    start = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    items = []
    for n in range(entries):
        words = [rng.choice(_WORDS) for _ in range(60)]
        if rng.random() < 0.02:
            words.insert(rng.randrange(60), rng.choice(_BRANDS))
        title = " ".join(words[:8]).capitalize()
        text = " ".join(words[8:])
        when = (start - timedelta(minutes=17 * n)).strftime("%a, %d %b %Y %H:%M:%S +0000")
        items.append(
            f"<item><title>{title}</title><link>https://site{feed}.example/{n}</link>"
            f'<guid isPermaLink="false">https://site{feed}.example/?p={n}</guid><pubDate>{when}</pubDate>'
            f"<dc:creator><![CDATA[Writer {n % 7}]]></dc:creator>"
            f"<description><![CDATA[<p>{text[:200]}</p><p><strong>{text[200:300]}</strong> {text[300:]}</p>]]>"
            f"</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>Site {feed}</title><link>https://site{feed}.example/</link><language>en</language>"
        + "".join(items) + "</channel></rss>"
    ).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=50)
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--keywords", type=int, default=50)
    args = parser.parse_args()
    rng = random.Random(3)
    bodies = [feed_body(n, args.entries, rng) for n in range(args.feeds)]
    total = args.feeds * args.entries
    with running() as server, httpx.Client(timeout=30) as http:
        urls = [server.serve(f"/feed/{n}.xml", Route(body, etag=f'"v{n}"')) for n, body in enumerate(bodies)]
        config = RssConfig(feeds=urls, keywords=_BRANDS[-args.keywords:])
        provider = RssProvider(config, {}, http)
        now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
        best, matched, cursor = float("inf"), 0, {}
        for _ in range(3):
            started = time.perf_counter()
            result = provider.fetch({}, now)
            best = min(best, time.perf_counter() - started)
            matched, cursor = len(result.posts), dict(result.cursor)
            assert not result.rejected, result.rejected
        unchanged = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            assert not provider.fetch(cursor, now).posts
            unchanged = min(unchanged, time.perf_counter() - started)
    parse_best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for body in bodies:
            feedparser.parse(io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False)
        parse_best = min(parse_best, time.perf_counter() - started)
    size = sum(map(len, bodies)) / len(bodies) / 1024
    print(f"feeds={args.feeds} entries_per_feed={args.entries} feed_kib={size:.0f} keywords={args.keywords} "
          f"matched={matched}")
    print(f"entries_per_s={total / best:,.0f} (first poll of all feeds: {best:.2f} s)")
    print(f"parse_only_entries_per_s={total / parse_best:,.0f}")
    print(f"unchanged_poll_s={unchanged:.3f}")


if __name__ == "__main__":
    main()
