"""Mastodon streaming speed: statuses/s the provider consumes from a local SSE server sending at full speed.

    PYTHONPATH=src python bench/mastodon_stream.py [--events 20000] [--heartbeat-every 100]

The fake Mastodon of the tests (tests/connectors/mastodon/fake_mastodon.py) streams ``--events`` ``update`` events
of the documentation's status shape on the hashtag stream, each using the listened hashtag (so every one is
parsed, its HTML reduced to text, run through the keyword matcher and handed out), with a ``:thump`` heartbeat
every ``--heartbeat-every`` events. The clock runs from the first batch (after connecting and the REST catch-up)
to the last status. The server runs in a process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from multiprocessing import Event, Process, Queue
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "connectors" / "mastodon"))

from fake_mastodon import HEARTBEAT, TOKEN, FakeMastodon, frame, status  # noqa: E402

from caredesk.connectors.builtin.mastodon import MastodonConfig, MastodonProvider  # noqa: E402


async def consume(provider: MastodonProvider, wanted: int) -> tuple[int, int, float]:
    received = batches = 0
    started = 0.0
    async with httpx.AsyncClient() as client:
        events = provider.stream({}, client)
        async for batch in events:
            if not started:
                started = time.perf_counter()
            batches += 1
            received += len(batch.posts)
            if received >= wanted:
                break
        await events.aclose()  # type: ignore[attr-defined]
    return received, batches, time.perf_counter() - started


def serve(events: int, heartbeat_every: int, ready: Queue[tuple[str, int]], stop: EventType) -> None:
    """The fake server, in its own process so that it does not share the client's interpreter lock."""
    frames: list[bytes] = []
    for n in range(events):
        body = status(str(100_000_000 + n), "", tags=("caredesk",),
                      html_content='<p><a href="https://mastodon.social/tags/caredesk" class="mention hashtag">'
                                   f"#<span>caredesk</span></a> my router keeps dropping,<br>day {n} of this "
                                   "&amp; nobody answers 🙃</p>")
        frames.append(frame("update", body))
        if n % heartbeat_every == 0:
            frames.append(HEARTBEAT)
    with FakeMastodon() as fake:
        fake.script_stream("hashtag:caredesk", frames)
        ready.put((fake.url, sum(len(f) for f in frames)))
        stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--heartbeat-every", type=int, default=100)
    args = parser.parse_args()
    ready: Queue[tuple[str, int]] = Queue()
    stop = Event()
    server = Process(target=serve, args=(args.events, args.heartbeat_every, ready, stop), daemon=True)
    server.start()
    try:
        url, size = ready.get(timeout=120)
        config = MastodonConfig(instance=url, hashtags=("caredesk",))
        with httpx.Client() as http:
            provider = MastodonProvider(config, {"access_token": TOKEN}, http)
            received, batches, elapsed = asyncio.run(consume(provider, args.events))
    finally:
        stop.set()
        server.join(10)
    print(f"{received} statuses in {batches} batches ({size / 1e6:.1f} MB of SSE) in {elapsed:.2f} s: "
          f"{received / elapsed:,.0f} statuses/s")


if __name__ == "__main__":
    main()
