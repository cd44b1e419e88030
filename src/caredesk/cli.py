"""The ``caredesk`` command."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from caredesk.config.embedded import Environment, prepare


def _setup(args: argparse.Namespace) -> Environment:
    env = prepare(getattr(args, "data_dir", None))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caredesk.config.settings")
    import django

    django.setup()
    return env


class CommandError(Exception):
    """The command cannot run; the message tells the user what to do."""


def _check_schema() -> None:
    from django.db import DatabaseError, connection
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        raise CommandError(f"cannot reach the database: {str(exc).strip().splitlines()[0]}") from exc
    if pending:
        raise CommandError("the database schema is missing or out of date: run caredesk migrate")


@contextlib.contextmanager
def django_context(args: argparse.Namespace, *, schema: bool = True) -> Iterator[Environment]:
    """What every command runs in: the data dir and database (embedded unless DATABASE_URL), Django, and, with
    ``schema``, a check that the database is migrated, so a command says "run caredesk migrate" instead of
    failing with a traceback. The embedded server stops when the block ends."""
    env = _setup(args)
    try:
        if schema:
            _check_schema()
        yield env
    finally:
        from django.db import connections

        connections.close_all()
        env.stop()


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
    with django_context(args):
        from caredesk.ingest.importer import import_file

        return import_file(
            Path(args.file), brand_slug=args.brand, file_format=args.format, batch_size=args.batch_size,
            platform=args.platform, progress=not args.quiet,
        )


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

    def add(
        name: str, help_text: str, *, parent: Any = None, data_dir: bool = True
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = (parent or sub).add_parser(name, help=help_text, description=help_text)
        if data_dir:
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

    from caredesk.accounts.commands import add_account_commands

    add_account_commands(add, django_context)

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
    try:
        result: int = args.func(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
