"""``caredesk listen`` against a local streaming platform: resume, changes, config, credentials, rate limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from runtime_helpers import listening, stream_installation, wait_until

from caredesk.cases.models import Activity, Case, Post
from caredesk.connectors.actions import do_update_installation, lock_installation
from caredesk.connectors.models import ConnectorInstallation, ConnectorLease, RawPayload
from factories import make_brand

pytestmark = pytest.mark.django_db(transaction=True)


def _ids(installation: ConnectorInstallation) -> list[str]:
    return sorted(Post.objects.filter(installation=installation).values_list("external_id", flat=True))


def test_a_dropped_stream_resumes_from_its_cursor_without_loss_or_duplicates(platform):
    installation = stream_installation(make_brand(), platform.url)
    for i in range(1, 5):
        platform.post(f"p{i}", f"my internet is down again, day {i}", author=f"u{i}")
    platform.drops = [2, 1]  # the first connection is cut after two events, the second after one
    with listening() as listener:
        wait_until(lambda: len(_ids(installation)) == 4, what="the four posts")
        platform.post("p5", "still no internet, please help", author="u5")  # live, on the third connection
        wait_until(lambda: len(_ids(installation)) == 5, what="the live post")
        holder = listener.holder
        assert ConnectorLease.objects.get(installation=installation).holder == holder
    assert _ids(installation) == ["p1", "p2", "p3", "p4", "p5"]
    # Each reconnection asked for what came after the last stored batch: nothing twice, nothing skipped.
    assert platform.stream_afters()[:3] == [0, 2, 3]
    installation.refresh_from_db()
    assert installation.cursor == {"after": 5}
    assert installation.health == "ok" and installation.posts_received == 5
    payloads = RawPayload.objects.filter(installation=installation)
    assert payloads.count() == 5 and {p.status for p in payloads} == {"processed"}
    # A clean stop gives the lease back at once, for another listener to take without waiting.
    lease = ConnectorLease.objects.get(installation=installation)
    assert lease.holder == holder and lease.expires_at <= datetime.now(UTC)


def test_edits_and_deletions_reach_the_stored_posts(platform):
    installation = stream_installation(make_brand(), platform.url)
    platform.post("p1", "my router is broken, call me on 0612345678", author="u1")
    platform.post("p2", "my bill is wrong this month", author="u2")
    with listening():
        wait_until(lambda: len(_ids(installation)) == 2, what="the posts")
        platform.edit("p1", "my router is broken, any news?", author="u1")
        platform.delete("p2")
        wait_until(lambda: Post.objects.filter(external_id="p2", deleted_at__isnull=False).exists(), what="delete")
        wait_until(lambda: Post.objects.filter(external_id="p1", edited_at__isnull=False).exists(), what="edit")
    edited = Post.objects.get(installation=installation, external_id="p1")
    deleted = Post.objects.get(installation=installation, external_id="p2")
    assert edited.text == "my router is broken, any news?" and "0612345678" not in str(edited.raw)
    assert deleted.text == "" and deleted.raw == {} and deleted.case is not None
    assert deleted.case.subject == "(post deleted on the platform)"
    assert edited.case is not None and "any news" in edited.case.subject
    kinds = dict(Activity.objects.filter(kind__in=["post_edited", "post_deleted"]).values_list("kind", "data"))
    assert kinds == {"post_edited": {"post_id": edited.pk}, "post_deleted": {"post_id": deleted.pk}}
    assert not any("0612345678" in str(a.data) for a in Activity.objects.all())


def test_changed_listening_rules_take_effect_without_a_restart(platform):
    installation = stream_installation(make_brand(), platform.url, keywords=["router"])
    platform.post("p1", "my router is broken", author="u1")
    platform.post("p2", "my modem is broken", author="u2")  # not a keyword yet
    with listening():
        wait_until(lambda: installation.__class__.objects.get(pk=installation.pk).cursor == {"after": 2},
                   what="both events read")
        assert _ids(installation) == ["p1"]
        connections = platform.connections
        from django.db import transaction

        with transaction.atomic():
            do_update_installation(lock_installation(installation.pk), config={"url": platform.url,
                                                                                "keywords": ["router", "modem"]})
        wait_until(lambda: platform.connections > connections, what="a reconnection with the new rules")
        platform.post("p3", "the modem light is red", author="u3")
        wait_until(lambda: "p3" in _ids(installation), what="a post only the new rules accept")
    assert _ids(installation) == ["p1", "p3"]


def test_refused_credentials_stop_the_stream_until_an_admin_changes_them(platform):
    from django.db import transaction

    installation = stream_installation(make_brand(), platform.url)
    platform.tokens = {"new-token"}  # the platform revoked good-token
    platform.post("p1", "internet down since this morning", author="u1")
    with listening() as listener:
        wait_until(lambda: ConnectorInstallation.objects.get(pk=installation.pk).auth_revoked_at is not None,
                   what="the credentials marked refused")
        wait_until(lambda: installation.pk not in listener.streams, what="the stream stopped")
        refused = ConnectorInstallation.objects.get(pk=installation.pk)
        assert refused.health == "failing" and "refused the credentials" in refused.last_error
        assert "an admin must change them" in refused.last_error
        # No stream is running for it, so nothing retries: one request reached the platform.
        assert len(platform.stream_afters()) == 1
        with transaction.atomic():
            do_update_installation(lock_installation(installation.pk), credentials={"token": "new-token"})
        wait_until(lambda: _ids(installation) == ["p1"], what="the post, with the new credentials")
    assert platform.stream_afters() == [0, 0]
    installation.refresh_from_db()
    assert installation.health == "ok" and installation.auth_revoked_at is None


def test_a_rate_limited_stream_waits_for_the_platform(platform):
    installation = stream_installation(make_brand(), platform.url)
    platform.rate_limited = 1
    platform.retry_after = 2
    platform.post("p1", "no signal at all", author="u1")
    with listening():
        wait_until(lambda: ConnectorInstallation.objects.get(pk=installation.pk).retry_at is not None,
                   what="the rate limit recorded")
        limited = ConnectorInstallation.objects.get(pk=installation.pk)
        assert limited.health == "degraded" and "slow down" in limited.last_error
        wait_until(lambda: _ids(installation) == ["p1"], what="the post after the wait")
    assert platform.stream_afters()[:2] == [0, 0]
    first, second = platform.request_times[:2]
    # Not before the platform allowed (a bound the runtime guarantees, not a speed figure).
    assert second - first >= platform.retry_after - 0.2
    installation.refresh_from_db()
    assert installation.retry_at is None and installation.health == "ok"
    assert Case.objects.count() == 1


def test_credentials_the_platform_rotates_are_stored_encrypted_and_used_on_reconnect(platform):
    installation = stream_installation(make_brand(), platform.url)
    platform.post("p1", "my internet is down", author="u1")
    platform.drops = [3]  # cut after three events: the reconnection must use the new token
    with listening():
        wait_until(lambda: len(_ids(installation)) == 1, what="the first post")
        platform.rotate_token("fresh-token")  # good-token is refused from now on
        platform.post("p2", "still down", author="u2")
        wait_until(lambda: platform.connections >= 2 and len(_ids(installation)) == 2, what="the reconnection")
        platform.post("p3", "hello?", author="u3")
        wait_until(lambda: len(_ids(installation)) == 3, what="a post on the new token")
    installation.refresh_from_db()
    assert installation.get_credentials() == {"token": "fresh-token"}
    assert "fresh-token" not in installation.credentials_encrypted
    assert not any(b"fresh-token" in bytes(p.body) for p in RawPayload.objects.all())
    assert installation.auth_revoked_at is None
