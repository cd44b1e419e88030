"""Locust users for bench/desk_load.py: agents in browsers. Not run by itself: desk_load.py sets the desk up.

Each simulated agent logs in on one of the web servers (``LOAD_HOSTS``), keeps the page's live stream
(``/stream``) open in a greenlet as the inbox page does, and reads: the inbox, the case list, and cases, with a
person's pause between clicks. Every event the stream delivers is written with its arrival time to
``LOAD_SSE_LOG`` so the runner can measure the delay from ingest to the browser.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from typing import Any

import gevent
from locust import HttpUser, between, task

HOSTS = os.environ["LOAD_HOSTS"].split(",")
SETUP: dict[str, Any] = json.loads(open(os.environ["LOAD_SETUP"]).read())  # noqa: SIM115, PTH123
_usernames = itertools.cycle(SETUP["usernames"])
SSE_LOG = os.environ.get("LOAD_SSE_LOG")


class Agent(HttpUser):
    wait_time = between(1.0, 3.0)  # a person reads a page before the next click
    host = HOSTS[0]

    def on_start(self) -> None:
        self.base = random.choice(HOSTS)
        self.client.get(f"{self.base}/login/", name="/login/")
        token = self.client.cookies.get("csrftoken", "")
        response = self.client.post(
            f"{self.base}/login/", name="/login/ (post)", allow_redirects=False,
            data={"username": next(_usernames), "password": SETUP["password"], "csrfmiddlewaretoken": token},
            headers={"Referer": f"{self.base}/login/"},
        )
        if response.status_code != 302:
            raise RuntimeError(f"login refused: {response.status_code}")
        self.stream = gevent.spawn(self._stream)

    def on_stop(self) -> None:
        self.stream.kill(block=False)

    def _stream(self) -> None:
        log = open(SSE_LOG, "a", buffering=1) if SSE_LOG else None  # noqa: SIM115, PTH123
        while True:
            try:
                response = self.client.get(f"{self.base}/stream", name="/stream (connect)", stream=True,
                                           timeout=(10, 60))
                try:
                    buffer = ""
                    for chunk in response.iter_content(chunk_size=None):
                        now = time.time()
                        buffer += chunk.decode()
                        *lines, buffer = buffer.split("\n")
                        for line in lines:
                            if line.startswith("id: ") and log is not None:
                                log.write(f"{line[4:]} {now:.6f}\n")
                finally:
                    response.close()
            except Exception as exc:  # noqa: BLE001 - a dropped stream reconnects, as the page does
                if log is not None:
                    log.write(f"# {type(exc).__name__}: {exc}\n")
                gevent.sleep(1)

    @task(3)
    def inbox(self) -> None:
        self.client.get(f"{self.base}/", name="/ (inbox)")

    @task(2)
    def case_list(self) -> None:
        self.client.get(f"{self.base}/cases/", name="/cases/ (list)")

    @task(4)
    def case(self) -> None:
        self.client.get(f"{self.base}/cases/{random.choice(SETUP['cases'])}/", name="/cases/[id]/")
