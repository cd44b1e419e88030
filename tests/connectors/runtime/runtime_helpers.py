"""Helpers shared by the runtime's tests."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from caredesk.accounts.models import Brand
from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.listen.runner import Listener
from caredesk.connectors.models import ConnectorInstallation

_seq = itertools.count(1)


def wait_until(predicate: Callable[[], bool], timeout: float = 60, what: str = "the condition") -> None:
    """Wait for something the runtime does in another thread or process (a bound, not a timed assertion: the
    test fails only if it never happens)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stream_installation(brand: Brand, url: str, **config: object) -> ConnectorInstallation:
    return do_create_installation(brand, "test_stream", f"stream {next(_seq)}", {"url": url, **config},
                                  credentials={"token": "good-token"})


@contextmanager
def listening(lease_seconds: float = 2.0) -> Iterator[Listener]:
    """A ``caredesk listen`` in a thread of this process, stopped (and its leases released) at the end."""
    listener = Listener(lease_seconds=lease_seconds, scan_seconds=0.2, read_timeout=10)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            listener.run()
        except BaseException as exc:  # noqa: BLE001  # reported to the test below
            failure.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="listener")
    thread.start()
    try:
        yield listener
    finally:
        listener.stop()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the listener did not stop"
    if failure:
        raise failure[0]


RUN_CAREDESK = Path(__file__).resolve().parent / "run_caredesk.py"


def database_env(tmp_path: Path) -> dict[str, str]:
    """The environment for a ``caredesk`` subprocess on this test run's database (its schema is migrated, and
    with ``transaction=True`` what the test writes is committed and visible to it)."""
    params = connection.settings_dict
    host = params["HOST"]
    auth = params["USER"] + (f":{params['PASSWORD']}" if params["PASSWORD"] else "")
    if host.startswith("/"):
        url = f"postgresql://{auth}@/{params['NAME']}?host={host}"
    else:
        url = f"postgresql://{auth}@{host}:{params['PORT'] or 5432}/{params['NAME']}"
    return {**os.environ, "DATABASE_URL": url, "CAREDESK_DATA_DIR": str(tmp_path)}


def caredesk(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``caredesk ARGS`` (with the test providers) to its end."""
    return subprocess.run([sys.executable, str(RUN_CAREDESK), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def start_caredesk(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, str(RUN_CAREDESK), *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
