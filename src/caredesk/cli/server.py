"""``caredesk demo``, ``serve``, ``worker`` and ``migrate``: running the desk."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from caredesk.cli.context import django_context, setup
from caredesk.cli.registry import AddParser


def _migrate(verbosity: int = 1) -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=verbosity)


def cmd_migrate(args: argparse.Namespace) -> int:
    with django_context(args, schema=False):
        _migrate()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    with django_context(args, schema=not args.migrate):
        import uvicorn
        from django.conf import settings

        if args.migrate:
            _migrate(verbosity=0)
        from uvicorn.config import LOGGING_CONFIG

        uvicorn.run(
            "caredesk.config.asgi:application",
            host=args.host,
            port=args.port,
            log_level="warning",
            timeout_graceful_shutdown=3,
            # In JSON, uvicorn's messages go through Django's LOGGING (one format for the shipper to parse).
            log_config=None if settings.CAREDESK_LOG_FORMAT == "json" else LOGGING_CONFIG,
        )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    with django_context(args):
        from caredesk.jobs.worker import run_worker

        queues = [q.strip() for q in (args.queues or "").split(",") if q.strip()]
        run_worker(args.concurrency, queues=queues or None)
    return 0


def _wait_for_http(url: str, timeout: float) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


def cmd_demo(args: argparse.Namespace) -> int:
    env = setup(args, generate_secret=True)  # the demo needs nothing configured
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        from caredesk.connectors.setup import PlatformUnreachable, SetupRefused
        from caredesk.demo import DemoConnectionsError, load_connections, seed_demo

        print(f"caredesk demo — data in {env.data_dir}" + (" (embedded PostgreSQL)" if env.embedded else ""))
        _migrate(verbosity=0)
        try:
            real = load_connections(Path(args.connections)) if args.connections else None
            logins = seed_demo(speed=args.speed, data_dir=Path(env.data_dir), connections=real)
        except (DemoConnectionsError, SetupRefused, PlatformUnreachable) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        me = [sys.executable, "-m", "caredesk"]
        children.append(subprocess.Popen([*me, "worker"], start_new_session=True))
        children.append(subprocess.Popen([*me, "listen"], start_new_session=True))  # streaming connectors
        children.append(
            subprocess.Popen([*me, "serve", "--host", args.host, "--port", str(args.port)], start_new_session=True)
        )
        url = f"http://{args.host}:{args.port}"
        if not _wait_for_http(f"{url}/healthz", 60):
            print("error: the web server did not start; see the messages above", file=sys.stderr)
            return 1
        print(f"\n  Inbox:   {url}/\n  API:     {url}/api/docs\n  Health:  {url}/healthz\n")
        for username, password in logins:
            print(f"  login: {username} / {password}")
        print("\nPosts are arriving from the replay connector. Press Ctrl-C to stop.")
        while not stopping:
            if any(c.poll() is not None for c in children):
                print("error: a demo process exited unexpectedly", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        from django.db import connections

        connections.close_all()
        env.stop()
        print("stopped.")




def add_server_commands(add: AddParser) -> None:
    p = add("demo", "run the whole desk with demo data: database, worker, listener, web server")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed multiplier")
    p.add_argument("--connections", type=Path, default=os.environ.get("CAREDESK_DEMO_CONNECTIONS") or None,
                   help="a JSON file of real connections (brand, provider, name, config, credentials) to listen "
                        "on instead of the replay (default: $CAREDESK_DEMO_CONNECTIONS)")
    p.set_defaults(func=cmd_demo)

    p = add("serve", "run the web server (ASGI)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--migrate", action="store_true", help="apply migrations first")
    p.set_defaults(func=cmd_serve)

    p = add("worker", "run background jobs: connector polling and reply sending")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--queues", default=os.environ.get("CAREDESK_WORKER_QUEUES", ""),
                   help="comma-separated queues to work on (connectors, outbox, housekeeping; default: all, or "
                        "$CAREDESK_WORKER_QUEUES)")
    p.set_defaults(func=cmd_worker)

    p = add("migrate", "create or upgrade the database schema")
    p.set_defaults(func=cmd_migrate)
