"""An X installation at work, in a real browser: the desk listens (by polling, by stream, by webhook: whichever
rung of the ladder works), an agent answers a mention, a keyword-only match is refused with its reason and a link
to the post on X, and reads stop at the budget — each as the agent or the admin sees it.

X is the fake server of the provider's tests (tests/connectors/x/fake_x.py), in this process on 127.0.0.1; the
desk runs as subprocesses (uvicorn, a worker for the outbox and connectors queues, ``caredesk listen``) from
tests/browser_support.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from django.contrib.auth.models import User
from fake_x import ACCESS, CLIENT_ID, REFRESH, FakeX, tweet

from browser_support import PASSWORD, browser_marks, login, new_page, running_desk
from caredesk.cases.models import Post
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.setup import add_connection
from caredesk.inbox.models import CannedReply
from caredesk.outbox.models import Reply
from factories import make_brand, make_user

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = browser_marks()

CUSTOMER = "1453512613467029505"


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


def _connect(fake: FakeX, **config: Any) -> ConnectorInstallation:
    return add_connection(make_brand(), "x", "Nimbus on X", {"api": fake.url, **config},
                          {"access_token": ACCESS, "refresh_token": REFRESH, "client_id": CLIENT_ID})


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
    _connect(fake)
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
    assert page_errors == [], page_errors
