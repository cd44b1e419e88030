"""An X installation at work, in a real browser: the desk listens (by polling, by stream, by webhook: whichever
rung of the ladder works, shown on the Connections page), an agent answers a mention, a keyword-only match is
refused with its reason and a link to the post on X, and reads stop at the budget — each as the agent or the
admin sees it.

X is the fake server of the provider's tests (tests/connectors/x/fake_x.py), in this process on 127.0.0.1; the
desk runs as subprocesses (uvicorn, a worker for the outbox and connectors queues, ``caredesk listen``) from
tests/browser_support.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from copy import deepcopy
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.db import transaction
from fake_x import ACCESS, BEARER, CLIENT_ID, OUR_ID, REFRESH, FakeX, fixture, line, tweet

from browser_support import PASSWORD, browser_marks, login, new_page, running_desk
from caredesk.cases.models import Post
from caredesk.connectors.builtin.x.rules import tag_prefix
from caredesk.connectors.builtin.x.webhook import digest
from caredesk.connectors.costs.ledger import do_set_budget
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.setup import add_connection
from caredesk.inbox.models import CannedReply
from caredesk.outbox.models import Reply
from factories import make_brand, make_user

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = browser_marks()

CUSTOMER = "1453512613467029505"
SECRET = "consumer-secret"


@pytest.fixture(scope="module")
def fake_x() -> Iterator[FakeX]:
    with FakeX() as fake:
        yield fake


@pytest.fixture(scope="module")
def desk(django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with django_db_blocker.unblock():
        with running_desk(tmp_path_factory.mktemp("x-desk"), queues=("outbox", "connectors"), listen=True,
                          env={"CAREDESK_POLL_INTERVAL": "1"}) as (base, _processes):
            yield base


@pytest.fixture
def fake(fake_x: FakeX) -> Iterator[FakeX]:
    fake_x.state.mentions.clear()
    fake_x.state.own_posts.clear()
    fake_x.state.failures.clear()
    fake_x.state.requests.clear()
    yield fake_x


@pytest.fixture
def admin(transactional_db: None) -> User:
    CannedReply.objects.get_or_create(brand=None, title="Can I help?", defaults={"text": "Can I help?"})
    return make_user("xadmin", PASSWORD, role="admin", brands=[make_brand()])


def _connect(fake: FakeX, *, app: bool = False, **config: Any) -> ConnectorInstallation:
    """The brand's X account; with ``app``, also the app's bearer token and consumer secret (streams, webhooks)."""
    credentials: dict[str, Any] = {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID}
    if app:
        credentials.update(bearer_token=BEARER, consumer_secret=SECRET)
    return add_connection(make_brand(), "x", "Nimbus on X", {"api": fake.url, **config}, credentials)


def _mention_event(post_id: str, text: str) -> dict[str, Any]:
    body = fixture("activity_post_mention_create.json")
    body["data"]["filter"]["user_id"] = OUR_ID
    body["data"]["payload"].update(id=post_id, text=text, edit_history_tweet_ids=[post_id])
    return body


def _keyword_line(post_id: str, text: str) -> dict[str, Any]:
    body = deepcopy(fixture("filtered_stream_line.json"))
    body["data"].update(id=post_id, text=text, edit_history_tweet_ids=[post_id])
    body["matching_rules"] = [{"id": "5", "tag": f"{tag_prefix(OUR_ID)}nimbus"}]  # one of this brand's rules
    return body


def _listening_by(page: Page, desk: str, installation: ConnectorInstallation, rung: str) -> None:
    """The Connections page names the rung of the ladder the connection uses (it is chosen as things change)."""
    deadline = time.monotonic() + 20
    while True:
        page.goto(f"{desk}/settings/connections/")
        shown = page.inner_text(f"#connection-{installation.pk} td.rung")
        if shown.startswith(f"by {rung}"):
            return
        assert time.monotonic() < deadline, f"listening {shown!r}, not by {rung}"
        time.sleep(0.5)


def _row_of(page: Page, external_id: str, seconds: float = 20) -> str:
    """Waits until the post is stored and its case is in the list (no reload: the live stream refreshes it)."""
    deadline = time.monotonic() + seconds
    while not Post.objects.filter(external_id=external_id, case__isnull=False).exists():
        assert time.monotonic() < deadline, f"post {external_id} never arrived"
        time.sleep(0.2)
    case_id = Post.objects.get(external_id=external_id).case_id
    page.wait_for_selector(f"#case-row-{case_id}", timeout=20_000)
    return f"#case-row-{case_id}"


def test_a_polled_mention_is_answered_on_x(desk: str, browser: Browser, contexts: list[BrowserContext],
                                           page_errors: list[str], admin: User, fake: FakeX) -> None:
    fake.state.mentions = [tweet("1850000000000000101", "@TwitterDev my internet is out since noon",
                                 author_id=CUSTOMER)]
    installation = _connect(fake)
    page = new_page(browser, contexts, page_errors)
    login(page, desk, "xadmin")
    row = _row_of(page, "1850000000000000101")
    page.click(row)
    page.wait_for_selector("#reply-text:not([disabled])")
    page.select_option("select[data-canned]", label="Can I help?")
    page.click('button[data-action="send"]')
    page.wait_for_selector('#thread [data-reply-state="sent"]', timeout=20_000)
    sent = fake.requests_to("POST", "/2/tweets")
    assert len(sent) == 1
    assert json.loads(sent[0].body) == {"text": "Can I help?",
                                        "reply": {"in_reply_to_tweet_id": "1850000000000000101"}}
    assert Reply.objects.get().external_id == fake.state.own_posts[0]["id"]
    # No app token: no stream, no webhook; the ladder says why it polls.
    _listening_by(page, desk, installation, "poll")
    assert not fake.requests_to("GET", "/2/activity/stream")
    assert page_errors == [], page_errors


def test_a_streamed_mention_arrives_live_and_a_keyword_match_is_refused_with_a_link_to_x(
    desk: str, browser: Browser, contexts: list[BrowserContext], page_errors: list[str], admin: User, fake: FakeX,
) -> None:
    # The Activity API stream brings a mention; the filtered stream, a post that only uses a keyword.
    fake.state.streams["/2/activity/stream"] = [[b"\r\n", line(_mention_event(
        "1850000000000000201", "@TwitterDev the whole street has no signal")), b"\r\n", 30.0]]
    fake.state.streams["/2/tweets/search/stream"] = [[b"\r\n", line(_keyword_line(
        "1850000000000000202", "nimbus outage again <b>tonight</b>")), b"\r\n", 30.0]]
    installation = _connect(fake, app=True, keywords=["nimbus"])
    page = new_page(browser, contexts, page_errors)
    login(page, desk, "xadmin")
    mention = _row_of(page, "1850000000000000201")
    assert "the whole street has no signal" in page.inner_text(mention)
    heard = _row_of(page, "1850000000000000202")
    page.click(heard)
    refusal = page.wait_for_selector("[data-reply-refusal]")
    assert refusal is not None and "did not address the brand" in refusal.inner_text()
    link = page.wait_for_selector("a[data-open-on-platform]")
    assert link is not None and link.get_attribute("href") == "https://x.com/catperson/status/1850000000000000202"
    assert link.inner_text() == "Open the post on X"
    assert page.is_disabled("#reply-text") and page.is_disabled('button[data-action="send"]')
    assert "nimbus outage again <b>tonight</b>" in page.inner_text("#thread")  # the post's markup shown as text
    # The mention, by contrast, is answered through the API.
    page.click(mention)
    page.wait_for_selector("#reply-text:not([disabled])")
    page.fill("#reply-text", "So sorry, Rita. Checking the street now.")
    page.click('button[data-action="send"]')
    page.wait_for_selector('#thread [data-reply-state="sent"]', timeout=20_000)
    assert [json.loads(r.body)["reply"] for r in fake.requests_to("POST", "/2/tweets")] == [
        {"in_reply_to_tweet_id": "1850000000000000201"}]
    _listening_by(page, desk, installation, "stream")
    assert page_errors == [], page_errors


def test_a_signed_webhook_delivery_arrives_live(
    desk: str, browser: Browser, contexts: list[BrowserContext], page_errors: list[str], admin: User, fake: FakeX,
) -> None:
    installation = _connect(fake, app=True, webhook_url="https://care.nimbus.example/hooks/1")
    page = new_page(browser, contexts, page_errors)
    login(page, desk, "xadmin")
    hook = f"{desk}/hooks/{installation.pk}"
    crc = httpx.get(hook, params={"crc_token": "challenge_string"})
    assert crc.status_code == 200 and crc.json() == {"response_token": digest(SECRET, b"challenge_string")}
    body = json.dumps(_mention_event("1850000000000000301", "@TwitterDev billed twice this month")).encode()
    forged = httpx.post(hook, content=body, headers={"x-twitter-webhooks-signature": digest("guess", body)})
    assert forged.status_code == 401
    signed = httpx.post(hook, content=body, headers={"x-twitter-webhooks-signature": digest(SECRET, body),
                                                       "content-type": "application/json"})
    assert signed.status_code == 202
    row = _row_of(page, "1850000000000000301")
    assert "billed twice this month" in page.inner_text(row)
    # X's challenge was answered and a signed delivery came: the webhook works, so nothing streams it.
    _listening_by(page, desk, installation, "webhook")
    assert page_errors == [], page_errors


def test_reads_stop_at_the_budget_and_go_on_once_it_is_raised(
    desk: str, browser: Browser, contexts: list[BrowserContext], page_errors: list[str], admin: User, fake: FakeX,
) -> None:
    fake.state.mentions = [tweet("1850000000000000401", "@TwitterDev is anyone there?", author_id=CUSTOMER)]
    with transaction.atomic():  # the worker never sees the connection without its budget
        installation = _connect(fake)
        do_set_budget(installation, Decimal("0.00"))
    page = new_page(browser, contexts, page_errors)
    login(page, desk, "xadmin")
    page.goto(f"{desk}/settings/connections/")
    deadline = time.monotonic() + 20
    while not page.locator(".budget-stopped").count():
        assert time.monotonic() < deadline, "no budget banner"
        time.sleep(0.5)
        page.reload()
    banner = page.inner_text(".budget-stopped")
    assert "Reads stopped for Nimbus on X" in banner and "monthly budget of $0.00 reached" in banner
    assert "reads stopped" in page.inner_text(f"#connection-{installation.pk} td.budget")
    time.sleep(3)  # polls keep being due: none reads
    assert not fake.requests_to("GET", f"/2/users/{OUR_ID}/mentions")
    assert not Post.objects.filter(external_id="1850000000000000401").exists()
    # The admin raises the budget on the connection's page; the next poll reads, and the mention arrives.
    page.click(f"#connection-{installation.pk} a:text('Edit')")
    page.fill("#id_budget-monthly_budget", "25")
    page.click("#budget button[type=submit]")
    page.wait_for_url(f"{desk}/settings/connections/?changed={installation.pk}")
    assert ConnectorInstallation.objects.get(pk=installation.pk).monthly_budget == Decimal("25.00")
    page.goto(f"{desk}/")
    page.wait_for_selector("#live.live--on")
    row = _row_of(page, "1850000000000000401")
    assert "is anyone there?" in page.inner_text(row)
    assert page_errors == [], page_errors
