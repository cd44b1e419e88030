"""Post text, handles, names and notes are attacker-controlled: they must render as text everywhere."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from inbox_support import HX

from caredesk.cases.models import Author, Case, Post
from caredesk.connectors.models import ConnectorInstallation
from factories import ingest, make_post

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
HANDLE = '"><svg onload=alert(2)>'
NAME = "<b onmouseover=alert(3)>Eve</b>"


@pytest.fixture
def evil_case(installation: ConnectorInstallation) -> Case:
    report = ingest(installation, make_post(f"help {SCRIPT} and {IMG} https://evil.example/?q=<x>",
                                            author_id="evil", handle=HANDLE))
    Author.objects.filter(external_id="evil").update(name=NAME)
    case = Post.objects.get(pk=report.post_ids[0]).case
    assert case is not None
    return case


def _assert_escaped(html: str) -> None:
    for raw in (SCRIPT, IMG, "<svg onload", "<b onmouseover", "<x>"):
        assert raw not in html, f"raw {raw!r} in the page"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_thread_escapes_post_text_handle_and_name(agent_client: Client, evil_case: Case) -> None:
    for path in (f"/cases/{evil_case.pk}/", f"/cases/{evil_case.pk}/live"):
        html = agent_client.get(path, headers=HX).content.decode()
        _assert_escaped(html)
        assert "&quot;&gt;&lt;svg onload=alert(2)&gt;" in html  # the handle
        assert "&lt;b onmouseover=alert(3)&gt;Eve&lt;/b&gt;" in html  # the display name
    full = agent_client.get(f"/cases/{evil_case.pk}/").content.decode()
    _assert_escaped(full)
    assert full.count("<script") == full.count('<script src="/static/') + full.count(
        'type="application/json"')


def test_case_list_escapes_subject_and_handle(agent_client: Client, evil_case: Case) -> None:
    html = agent_client.get("/cases/", headers=HX).content.decode()
    assert SCRIPT not in html and IMG not in html and "<svg" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "@&quot;&gt;&lt;svg onload=alert(2)&gt;" in html


def test_case_list_escapes_every_value_of_a_row(agent_client: Client, evil_case: Case) -> None:
    # The rows are built in Python (inbox_tags.case_rows), not by the template's autoescape: each field is tried.
    from caredesk.accounts.models import Brand

    Case.objects.filter(pk=evil_case.pk).update(topic='"><i>t</i>', sentiment="<u>s</u>")
    Brand.objects.filter(pk=evil_case.brand_id).update(name="<b>brand</b>")
    html = agent_client.get("/cases/?status=any&topic=%22%3E%3Ci%3Et%3C%2Fi%3E", headers=HX).content.decode()
    assert f'id="case-row-{evil_case.pk}"' in html
    for raw in ("<i>t</i>", "<u>s</u>", "<b>brand</b>", '"><i>'):
        assert raw not in html, raw
    assert "&quot;&gt;&lt;i&gt;t&lt;/i&gt;" in html and "&lt;u&gt;s&lt;/u&gt;" in html
    assert "&lt;b&gt;brand&lt;/b&gt;" in html


def test_linkified_urls_stay_escaped(agent_client: Client, evil_case: Case) -> None:
    html = agent_client.get(f"/cases/{evil_case.pk}/live", headers=HX).content.decode()
    assert '<a href="https://evil.example/?q=' in html
    assert 'href="https://evil.example/?q=<x>' not in html


def test_notes_replies_and_canned_texts_are_escaped(agent_client: Client, evil_case: Case, agent: User) -> None:
    from caredesk.inbox.models import CannedReply

    agent_client.post(f"/cases/{evil_case.pk}/notes", {"text": f"note {SCRIPT}"}, headers=HX)
    agent_client.post(f"/cases/{evil_case.pk}/reply", {"text": f"reply {IMG}", "idempotency_key": "k-xss"},
                      headers=HX)
    CannedReply.objects.create(brand=None, title=f"T {IMG}", text=f"</script>{SCRIPT}")
    html = agent_client.get(f"/cases/{evil_case.pk}/", headers=HX).content.decode()
    _assert_escaped(html)
    assert "note &lt;script&gt;" in html and "reply &lt;img" in html
    # json_script escapes <, > and & inside the JSON, so "</script>" cannot end the block.
    assert "\\u003C/script\\u003E" in html


def test_reply_error_keeps_text_escaped(agent_client: Client, evil_case: Case) -> None:
    text = SCRIPT + "x" * 300
    response = agent_client.post(f"/cases/{evil_case.pk}/reply", {"text": text, "idempotency_key": "k2"},
                                 headers=HX)
    assert response.status_code == 422
    assert SCRIPT not in response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;xxx" in response.content.decode()


def test_non_http_post_url_is_not_linked(agent_client: Client, evil_case: Case) -> None:
    Post.objects.filter(case=evil_case).update(url="javascript:alert(1)")
    html = agent_client.get(f"/cases/{evil_case.pk}/live", headers=HX).content.decode()
    assert "javascript:alert(1)" not in html


def test_label_chips_reasons_and_selects_escape_every_value(agent_client: Client, evil_case: Case) -> None:
    # The labels block is built in Python (inbox_tags.post_labels): each value that comes from the stored triage
    # (a label's value, its reasons, who corrected it) is tried with markup.
    post = evil_case.posts.get()
    triage = dict(post.triage or {})
    triage["topic"] = {"value": f"t{SCRIPT}", "score": 0.5, "reasons": [f"r{IMG}"], "corrected_by": HANDLE}
    triage["sentiment"] = {"value": "negative", "score": 0.125, "reasons": [NAME]}
    Post.objects.filter(pk=post.pk).update(triage=triage)
    html = agent_client.get(f"/cases/{evil_case.pk}/", headers=HX).content.decode()
    for raw in (SCRIPT, IMG, "<svg onload", "<b onmouseover"):
        assert raw not in html, f"raw {raw!r} in the page"
    assert "t&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the chip, its reason line and the select's option
    assert "r&lt;img src=x onerror=alert(1)&gt;" in html
    assert "corrected by &quot;&gt;&lt;svg onload=alert(2)&gt;" in html
    assert "&lt;b onmouseover=alert(3)&gt;Eve&lt;/b&gt;" in html
    assert "score 0.13" in html  # floatformat's rounding (half up), not round-half-even's 0.12
