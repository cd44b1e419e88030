"""The ``caredesk`` command."""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from caredesk.config.embedded import Environment, prepare


def _setup(args: argparse.Namespace) -> Environment:
    env = prepare(getattr(args, "data_dir", None))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caredesk.config.settings")
    import django

    django.setup()
    return env


def _migrate(verbosity: int = 1) -> None:
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=verbosity)


def cmd_migrate(args: argparse.Namespace) -> int:
    env = _setup(args)
    try:
        _migrate()
    finally:
        env.stop()
    return 0


def cmd_createuser(args: argparse.Namespace) -> int:
    env = _setup(args)
    try:
        from django.db import transaction

        from caredesk.accounts.actions import AccountError, do_create_api_token, do_create_user

        password = args.password or os.environ.get("CAREDESK_PASSWORD")
        if not password:
            if not sys.stdin.isatty():
                print("error: give --password or CAREDESK_PASSWORD when not at a terminal", file=sys.stderr)
                return 2
            password = getpass.getpass("Password: ")
            if password != getpass.getpass("Password (again): "):
                print("error: the passwords differ", file=sys.stderr)
                return 2
        try:
            with transaction.atomic():
                user = do_create_user(args.username, password, email=args.email)
                token = do_create_api_token(user) if args.token else None
        except AccountError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"created user {user.username}")
        if token:
            print(f"API token (shown once): {token}")
        return 0
    finally:
        env.stop()


def cmd_serve(args: argparse.Namespace) -> int:
    env = _setup(args)
    try:
        import uvicorn

        if args.migrate:
            _migrate(verbosity=0)
        uvicorn.run(
            "caredesk.config.asgi:application",
            host=args.host,
            port=args.port,
            log_level="warning",
            timeout_graceful_shutdown=3,
        )
    finally:
        env.stop()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    env = _setup(args)
    try:
        from caredesk.jobs.worker import run_worker

        run_worker(args.concurrency)
    finally:
        env.stop()
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    env = _setup(args)
    try:
        from caredesk.ingest.importer import import_file

        return import_file(
            Path(args.file), brand_slug=args.brand, file_format=args.format, batch_size=args.batch_size,
            platform=args.platform, progress=not args.quiet,
        )
    finally:
        env.stop()


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
    env = _setup(args)
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        from caredesk.demo import seed_demo

        print(f"caredesk demo — data in {env.data_dir}" + (" (embedded PostgreSQL)" if env.embedded else ""))
        _migrate(verbosity=0)
        logins = seed_demo(speed=args.speed)
        me = [sys.executable, "-m", "caredesk"]
        children.append(subprocess.Popen([*me, "worker"], start_new_session=True))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caredesk", description="Social customer care desk.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--data-dir", type=Path, default=None,
                       help="where the embedded database and secret key live (ignored for the database when "
                            "DATABASE_URL is set)")
        return p

    p = add("demo", "run the whole desk with demo data: database, worker, web server")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed multiplier")
    p.set_defaults(func=cmd_demo)

    p = add("serve", "run the web server (ASGI)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--migrate", action="store_true", help="apply migrations first")
    p.set_defaults(func=cmd_serve)

    p = add("worker", "run background jobs: connector polling and reply sending")
    p.add_argument("--concurrency", type=int, default=4)
    p.set_defaults(func=cmd_worker)

    p = add("migrate", "create or upgrade the database schema")
    p.set_defaults(func=cmd_migrate)

    p = add("createuser", "create an agent account")
    p.add_argument("username")
    p.add_argument("--password", help="omit to be asked (or set CAREDESK_PASSWORD)")
    p.add_argument("--email", default="")
    p.add_argument("--staff", action="store_true", help="may use the Django admin")
    p.add_argument("--token", action="store_true", help="also create an API token and print it")
    p.set_defaults(func=cmd_createuser)

    p = add("ingest", "import posts from a JSONL or CSV file")
    p.add_argument("file")
    p.add_argument("--brand", default="default", help="brand slug (created if missing)")
    p.add_argument("--format", choices=["jsonl", "csv"], default=None, help="default: from the file extension")
    p.add_argument("--platform", default="x")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_ingest)

    from caredesk.triage.cli import add_triage_commands

    add_triage_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
