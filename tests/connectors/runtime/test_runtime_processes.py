"""``caredesk listen`` and ``caredesk connector`` as real processes: a listener killed with SIGKILL is taken over,
and a payload whose processing failed is kept and processed once by ``retry``."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from django.db import connection
from runtime_helpers import caredesk, database_env, start_caredesk, stream_installation, wait_until

from caredesk.cases.models import Post
from caredesk.connectors.models import ConnectorInstallation, ConnectorLease, RawPayload
from factories import make_brand

pytestmark = pytest.mark.django_db(transaction=True)


def _ids(installation: ConnectorInstallation) -> list[str]:
    return sorted(Post.objects.filter(installation=installation).values_list("external_id", flat=True))


def _holder() -> str | None:
    lease = ConnectorLease.objects.first()
    return lease.holder if lease is not None else None


def test_a_listener_killed_with_sigkill_is_taken_over_without_loss(platform, tmp_path: Path):
    installation = stream_installation(make_brand(), platform.url)
    env = database_env(tmp_path)
    for i in range(1, 4):
        platform.post(f"p{i}", f"no internet since monday, day {i}", author=f"u{i}")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    listeners = [start_caredesk("listen", "--lease-seconds", "2", "--scan-seconds", "0.3", env=env, log=log)
                 for log in logs]
    try:
        wait_until(lambda: _ids(installation) == ["p1", "p2", "p3"], what="the first posts")
        first = _holder()
        assert first is not None
        holder = next(p for p in listeners if f":{p.pid}:" in first)
        other = next(p for p in listeners if p is not holder)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        platform.post("p4", "still nothing, this is the fourth day", author="u4")
        platform.post("p5", "hello? anyone?", author="u5")
        wait_until(lambda: (_holder() or "").find(f":{other.pid}:") > 0, what="the takeover")
        wait_until(lambda: _ids(installation) == ["p1", "p2", "p3", "p4", "p5"], what="the posts after it")
        assert other.poll() is None
    finally:
        for process in listeners:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in listeners:
            process.wait(timeout=30)
    installation.refresh_from_db()
    assert installation.cursor == {"after": 5}
    # The survivor resumed from the saved cursor: every batch was stored exactly once.
    assert RawPayload.objects.filter(installation=installation, status="processed").count() == 5
    assert sorted(platform.stream_afters())[0] == 0 and platform.stream_afters()[-1] == 3


def _fail_posts_containing(word: str) -> None:
    """A fault in processing, injected in the database: inserting such a post fails (as a full disk, a broken
    constraint or a bug in ingest would)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_post() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF NEW.text LIKE '%%{word}%%' THEN RAISE EXCEPTION 'injected fault: refusing a post'; END IF; "
            "RETURN NEW; END $$"
        )
        cursor.execute("CREATE TRIGGER test_refuse_post BEFORE INSERT ON cases_post "
                       "FOR EACH ROW EXECUTE FUNCTION test_refuse_post()")


def _heal() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER IF EXISTS test_refuse_post ON cases_post")
        cursor.execute("DROP FUNCTION IF EXISTS test_refuse_post()")


def test_a_processing_failure_keeps_the_payload_and_retry_processes_it_once(platform, tmp_path: Path):
    from runtime_helpers import listening

    installation = stream_installation(make_brand(), platform.url)
    _fail_posts_containing("exploding")
    try:
        platform.post("p1", "my exploding battery phone", author="u1")
        platform.post("p2", "my internet is down", author="u2")
        with listening():
            wait_until(lambda: _ids(installation) == ["p2"], what="the next post, after the failure")
    finally:
        _heal()
    failed = RawPayload.objects.get(installation=installation, status="failed")
    assert "injected fault" in failed.error and failed.attempts == 1
    assert b"my exploding battery phone" in bytes(failed.body)
    installation.refresh_from_db()
    assert installation.cursor == {"after": 2}  # the stream went on; the failed batch waits for a retry

    env = database_env(tmp_path)
    listed = caredesk("connector", "payloads", "--failed", env=env)
    assert listed.returncode == 0, listed.stderr
    assert f"{failed.pk}\t{installation.name}\tstream\tfailed\tattempts=1" in listed.stdout
    assert "injected fault" in listed.stdout

    retried = caredesk("connector", "retry", str(failed.pk), env=env)
    assert retried.returncode == 0, retried.stderr
    assert f"payload {failed.pk}: processed" in retried.stdout
    again = caredesk("connector", "retry", "--all-failed", env=env)
    assert again.returncode == 0 and "no failed payloads" in again.stdout
    once_more = caredesk("connector", "retry", str(failed.pk), env=env)
    assert f"payload {failed.pk}: already processed" in once_more.stdout
    assert _ids(installation) == ["p1", "p2"]
    failed.refresh_from_db()
    assert failed.status == "processed" and failed.attempts == 2 and failed.error == ""
    installation.refresh_from_db()
    assert installation.cursor == {"after": 2}  # a retry of an older batch does not move the cursor back
    assert caredesk("connector", "retry", "999999", env=env).returncode == 2
