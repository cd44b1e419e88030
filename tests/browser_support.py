"""The pieces every browser test needs: the real ASGI server, job workers and ``caredesk listen`` as subprocesses
on the pytest-django test database, headless Debian chromium through Playwright, and logging in.

A pytest plugin (``pytest_plugins`` in tests/conftest.py), so its fixtures reach every browser test module.
Every test that uses the subprocesses needs ``transactional_db``: what the test process writes must be committed
for them to see it. Playwright never downloads a browser: it drives /usr/bin/chromium.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest
from django.db import connection

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[1]
PASSWORD = "agent-password-1"
WAIT_MS = 10_000


def browser_marks() -> list[pytest.MarkDecorator]:
    """What a browser test module sets as ``pytestmark``: skipped, with the reason, where chromium or Playwright
    is missing."""
    marks = [
        pytest.mark.browser,
        pytest.mark.django_db(transaction=True),
        pytest.mark.skipif(not Path(CHROMIUM).exists(),
                           reason=f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)"),
    ]
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:  # pragma: no cover - the test extra installs it
        marks.append(pytest.mark.skip(reason="playwright is not installed"))
    return marks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_database_url() -> str:
    """DATABASE_URL of the pytest-django test database (not the one the settings module was loaded with)."""
    db = connection.settings_dict
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or ""
    port = f":{db['PORT']}" if db.get("PORT") else ""
    name = quote(db["NAME"], safe="")
    if host.startswith("/"):  # a unix socket directory (the embedded pgserver)
        return f"postgresql://{auth}{port and 'localhost' + port}/{name}?host={quote(host, safe='')}"
    return f"postgresql://{auth}{host}{port}/{name}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # not a test, whatever its name says


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[tuple[str, subprocess.Popen[bytes], Any]] = []

    def start(self, name: str, args: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(args, env=dict(env), stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        self.running.append((name, proc, log))
        return proc

    def logs(self) -> str:
        out = []
        for name, _proc, _log in self.running:
            text = (self.log_dir / f"{name}.log").read_text(errors="replace")
            out.append(f"--- {name} ---\n{text[-4000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        for _name, proc, _log in self.running:
            proc.terminate()
        for _name, proc, log in self.running:
            try:
                proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            log.close()


@contextmanager
def running_desk(work: Path, *, queues: Sequence[str] = ("outbox",), listen: bool = False,
                 env: Mapping[str, str] | None = None) -> Iterator[tuple[str, Processes]]:
    """uvicorn serving caredesk's ASGI app, a procrastinate worker for ``queues`` and, with ``listen``, a
    ``caredesk listen`` process; yields the server's base URL. Precondition: the test database is unblocked."""
    environment = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "CAREDESK_SECRET_KEY": os.environ["CAREDESK_SECRET_KEY"],
        "CAREDESK_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SETTINGS_MODULE": "caredesk.config.settings",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    port = free_port()
    processes = Processes(work)
    server = processes.start("uvicorn", [
        sys.executable, "-m", "uvicorn", "caredesk.config.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--timeout-graceful-shutdown", "2",
    ], environment)
    processes.start("worker", [
        sys.executable, "-m", "django", "procrastinate", "worker", "--queues", ",".join(queues),
        "--concurrency", "2",
    ], environment)
    if listen:
        processes.start("listen", [sys.executable, "-m", "caredesk", "listen", "--lease-seconds", "4"], environment)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                pytest.fail(f"uvicorn exited with {server.returncode}\n{processes.logs()}")
            try:
                if httpx.get(f"{base}/login/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"uvicorn did not start\n{processes.logs()}")
            time.sleep(0.2)
        yield base, processes
    finally:
        processes.stop()
        logs = processes.logs()
        if "Traceback" in logs:
            print(logs)  # shown by pytest for a failing test; the files stay in the temp dir too


@pytest.fixture(scope="module")
def asgi_server(django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[str]:
    """The server and an outbox worker, for the module's tests."""
    with django_db_blocker.unblock():
        with running_desk(tmp_path_factory.mktemp("desk")) as (base, _processes):
            yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread, which Django would take for an async context.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            launched = p.chromium.launch(
                executable_path=CHROMIUM,
                args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            yield launched
            launched.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


@pytest.fixture
def page_errors() -> list[str]:
    return []


def new_page(browser: Browser, contexts: list[BrowserContext], errors: list[str]) -> Page:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Console errors include Content-Security-Policy violations and failed requests.
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    # Which request failed, for a console error that names only the element (htmx's "htmx:afterRequest").
    # (Not the aborted ones: a page that moves on, or a live stream that reconnects, cancels its requests.)
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.method} {request.url} "
                                                            f"({request.failure})")
            if "ERR_ABORTED" not in (request.failure or "") else None)
    page.on("response", lambda response: errors.append(f"HTTP {response.status}: {response.request.method} "
                                                       f"{response.url}") if response.status >= 500 else None)
    return page


def login(page: Page, base: str, username: str, *, next_url: str = "/") -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{next_url}")
    if next_url == "/":
        page.wait_for_selector("#live.live--on")  # the event stream is connected
