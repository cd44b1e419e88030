"""``caredesk connector subscribe`` for X end to end: the fake X runs its CRC check against the desk's own
``/hooks/<id>`` (a live server), the webhook id X answers is stored in the settings (config version bumped), a
second run changes nothing, and X's refusal is the command's error."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from fake_x import ACCESS, BEARER, CLIENT_ID, OUR_ID, REFRESH, FakeX

from caredesk.cli import build_parser
from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.builtin.x import XProvider
from caredesk.connectors.commands import EXIT_REFUSED, cmd_subscribe
from caredesk.connectors.models import ConnectorInstallation
from factories import make_brand

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "consumer-secret"


def _subscribe(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["connector", "subscribe", *argv])
    # Django and the database are pytest's already: the command's set-up has nothing left to do.
    code = cmd_subscribe(args, lambda _args: contextlib.nullcontext())
    out = capsys.readouterr()
    return code, out.out, out.err


def _install(fake: FakeX, **config: Any) -> ConnectorInstallation:
    return do_create_installation(
        make_brand(), "x", "Brand on X", {"api": fake.url, "user_id": OUR_ID, **config},
        credentials={"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID,
                     "bearer_token": BEARER, "consumer_secret": SECRET})


def test_subscribe_registers_the_webhook_through_a_real_crc_check(fake: FakeX, registered: type[XProvider],
                                                                  live_server: Any,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    installation = _install(fake)
    url = f"https://desk.example.com/hooks/{installation.pk}"
    installation.config = {**installation.config, "webhook_url": url}
    installation.save(update_fields=["config"])
    fake.state.consumer_secret = SECRET
    fake.state.reach = {url: f"{live_server.url}/hooks/{installation.pk}"}
    version = installation.config_version

    code, out, err = _subscribe(capsys, "Brand on X")
    assert code == 0, err
    (hook,) = fake.state.webhooks
    stored = ConnectorInstallation.objects.get(pk=installation.pk)
    assert stored.config["webhook_id"] == hook["id"] and stored.config_version == version + 1
    assert f"webhook {url}: registered with X now; its CRC check passed (id {hook['id']})" in out
    assert "subscriptions for 2244994945 created: post.mention.create, post.reply.create" in out
    assert f"stored webhook_id {hook['id']}" in out and out.rstrip().endswith("Brand on X: subscribed")
    assert {s["webhook_id"] for s in fake.state.subscriptions} == {hook["id"]}

    code, out, err = _subscribe(capsys, "Brand on X", "--brand", stored.brand.slug)
    assert code == 0, err
    assert "registered already, valid" in out and "in place: post.mention.create" in out and "stored" not in out
    assert ConnectorInstallation.objects.get(pk=installation.pk).config_version == version + 1
    assert len(fake.requests_to("POST", "/2/webhooks")) == 1 and len(fake.state.subscriptions) == 4


def test_subscribe_says_why_x_refused(fake: FakeX, registered: type[XProvider], live_server: Any,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    installation = _install(fake, webhook_url="https://desk.example.com/hooks/1")
    fake.state.consumer_secret = "not the secret the desk has"
    fake.state.reach = {"https://desk.example.com/hooks/1": f"{live_server.url}/hooks/{installation.pk}"}
    code, out, err = _subscribe(capsys, "Brand on X")
    assert code == EXIT_REFUSED
    assert "error: X refused to register the webhook (400:" in err and "CrcValidationFailed" in err
    assert ConnectorInstallation.objects.get(pk=installation.pk).config["webhook_id"] == ""
    code, _, err = _subscribe(capsys, "nobody")
    assert code == EXIT_REFUSED and "no installation called 'nobody'" in err
