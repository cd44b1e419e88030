"""``caredesk listen`` with a real provider: Mastodon's stream against the fake Mastodon server of its own tests
(tests/connectors/mastodon/fake_mastodon.py), through a drop, to stored posts, an edit and a deletion."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mastodon"))

from fake_mastodon import DROP, HEARTBEAT, TOKEN, FakeMastodon, frame, mention, status  # noqa: E402
from runtime_helpers import listening, wait_until  # noqa: E402

from caredesk.cases.models import Post  # noqa: E402
from caredesk.connectors.actions import do_create_installation  # noqa: E402
from caredesk.connectors.builtin.mastodon import MastodonProvider  # noqa: E402
from caredesk.connectors.models import ConnectorInstallation, RawPayload  # noqa: E402
from caredesk.connectors.registry import register_provider  # noqa: E402
from factories import make_brand  # noqa: E402

pytestmark = pytest.mark.django_db(transaction=True)


def _note(n: int, text: str | None = None) -> dict[str, object]:
    return mention(str(5000 + n), status(str(7000 + n), text or f"@trwnh my internet is down, day {n}",
                                         mention_us=True))


def test_mastodon_streams_through_the_listener_across_a_drop():
    register_provider(MastodonProvider)
    with FakeMastodon() as fake:
        fake.notifications += [_note(1)]  # before the listener: caught up by REST on connection
        fake.script_stream(
            "user",
            [HEARTBEAT, frame("notification", _note(2)), DROP],
            [frame("notification", _note(3)), HEARTBEAT],
        )
        installation = do_create_installation(make_brand(), "mastodon", "mastodon", {"instance": fake.url},
                                              credentials={"access_token": TOKEN})
        stored = lambda: sorted(Post.objects.filter(installation=installation)  # noqa: E731
                                .values_list("external_id", flat=True))
        with listening():
            # #2 came before the drop; the reconnection catches up from the saved cursor, #3 is streamed.
            fake.notifications += [_note(2)]
            wait_until(lambda: stored() == ["7001", "7002", "7003"], what="the three mentions")
            fake.push("user", frame("status.update", status("7003", "@trwnh (edited) back up, thanks",
                                                            mention_us=True, edited_at="2022-11-15T16:07:29.023Z")),
                      frame("delete", "7002"))
            wait_until(lambda: Post.objects.filter(external_id="7002", deleted_at__isnull=False).exists(),
                       what="the deletion")
            wait_until(lambda: Post.objects.filter(external_id="7003", edited_at__isnull=False).exists(),
                       what="the edit")
        assert fake.connections.get("user", 0) >= 2 or len(fake.requests_to("/api/v1/streaming/user")) >= 2
    assert "back up, thanks" in Post.objects.get(external_id="7003").text
    assert Post.objects.get(external_id="7002").text == ""
    installation = ConnectorInstallation.objects.get(pk=installation.pk)
    assert installation.health == "ok" and installation.cursor.get("notifications") == "5003"
    assert not RawPayload.objects.filter(installation=installation).exclude(status="processed").exists()
