"""Correcting a post's triage labels from the case thread: the selects, the HTMX write, errors and escaping."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from inbox_support import HX, MakeCase

from caredesk.cases.models import Activity, Case, Post
from caredesk.connectors.models import ConnectorInstallation
from caredesk.triage.models import LabelCorrection
from factories import ingest, make_post

pytestmark = pytest.mark.django_db


def _url(case: Case, post: Post) -> str:
    return f"/cases/{case.pk}/posts/{post.pk}/labels"


def _selected(html: str, task: str) -> str:
    """The selected value of one correction select in ``html``."""
    select = re.search(rf'<select name="value" data-label-task="{task}">(.*?)</select>', html, re.S)
    assert select is not None, f"no {task} select"
    chosen = re.findall(r'<option value="([^"]*)"[^>]* selected', select.group(1))
    assert len(chosen) == 1, chosen
    return chosen[0]


def test_thread_offers_a_select_per_label_with_the_current_value(agent_client: Client, case: Case) -> None:
    post = case.posts.get()
    html = agent_client.get(f"/cases/{case.pk}/", headers=HX).content.decode()
    assert html.count(f'hx-post="{_url(case, post)}"') == 5
    assert 'name="csrfmiddlewaretoken"' in html
    assert {task: _selected(html, task) for task in ("complaint", "needs_reply", "sentiment", "topic", "spam")} == {
        "complaint": "true", "needs_reply": "true", "sentiment": "negative", "topic": "outage", "spam": "false",
    }
    assert '<option value="billing">Billing / payments</option>' in html
    assert "corrected by" not in html


def test_correcting_a_label_rerenders_the_post_and_records_it(
    agent_client: Client, case: Case, agent: User
) -> None:
    post = case.posts.get()
    response = agent_client.post(_url(case, post), {"task": "topic", "value": "billing"}, headers=HX)
    assert response.status_code == 200
    html = response.content.decode()
    # Only the post comes back, its labels open, showing who corrected what.
    assert html.lstrip().startswith(f'<div class="msg msg--in" id="post-{post.pk}">')
    assert 'id="case-live"' not in html
    assert '<details class="labels" open>' in html
    assert _selected(html, "topic") == "billing"
    assert "corrected by ana" in html and "✎ ana" in html
    assert json.loads(response["HX-Trigger"]) == {"caredesk:case-changed": {"case": case.pk}}

    correction = LabelCorrection.objects.get()
    assert (correction.task, correction.value, correction.previous_value, correction.agent) == (
        "topic", "billing", "outage", agent)
    [activity] = Activity.objects.filter(case=case, kind=Activity.Kind.LABEL_CORRECTED)
    assert activity.actor == agent
    assert activity.data == {"post_id": post.pk, "task": "topic", "value": "billing", "previous": "outage"}
    assert Case.objects.get(pk=case.pk).topic == "billing"

    # The whole pane shows it too, and the timeline says what happened.
    pane = agent_client.get(f"/cases/{case.pk}/live", headers=HX).content.decode()
    assert "corrected topic: outage → billing" in pane
    assert _selected(pane, "topic") == "billing"


def test_boolean_correction_reads_yes_and_no(agent_client: Client, case: Case) -> None:
    post = case.posts.get()
    html = agent_client.post(_url(case, post), {"task": "complaint", "value": "false"}, headers=HX).content.decode()
    assert _selected(html, "complaint") == "false"
    assert "no complaint <small>✎ ana</small>" in html
    pane = agent_client.get(f"/cases/{case.pk}/live", headers=HX).content.decode()
    assert "corrected complaint: yes → no" in pane


def test_invalid_value_is_refused_with_the_error_in_the_post(agent_client: Client, case: Case) -> None:
    post = case.posts.get()
    response = agent_client.post(_url(case, post), {"task": "sentiment", "value": "furious"}, headers=HX)
    assert response.status_code == 422
    html = response.content.decode()
    assert 'role="alert"' in html and "sentiment must be one of negative, neutral, positive" in html
    assert _selected(html, "sentiment") == "negative"
    assert not LabelCorrection.objects.exists()
    assert not Activity.objects.filter(kind=Activity.Kind.LABEL_CORRECTED).exists()

    unknown_task = agent_client.post(_url(case, post), {"task": "urgency", "value": "1"}, headers=HX)
    assert unknown_task.status_code == 422
    assert "task:" in unknown_task.content.decode()


def test_attacker_text_in_a_value_is_escaped(agent_client: Client, make_case: MakeCase) -> None:
    script = "<script>alert(1)</script>"
    case = make_case(f"my bill is wrong {script}")
    post = case.posts.get()
    response = agent_client.post(_url(case, post), {"task": "topic", "value": '"><img src=x onerror=alert(2)>'},
                                 headers=HX)
    assert response.status_code == 422
    html = response.content.decode()
    assert "<img src=x" not in html and script not in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the post's own text, re-rendered
    # Without htmx the error lands in the full page, escaped as well.
    page = agent_client.post(_url(case, post), {"task": "topic", "value": script}).content.decode()
    assert script not in page and "unknown topic &#x27;&lt;script&gt;alert(1)&lt;/script&gt;&#x27;" in page


def test_post_of_another_case_or_missing_is_404(agent_client: Client, make_case: MakeCase) -> None:
    case, other = make_case(), make_case()
    foreign = other.posts.get()
    assert agent_client.post(_url(case, foreign), {"task": "topic", "value": "billing"},
                             headers=HX).status_code == 404
    assert agent_client.post(f"/cases/{case.pk}/posts/99999999/labels", {"task": "topic", "value": "billing"},
                             headers=HX).status_code == 404
    assert not LabelCorrection.objects.exists()


def test_posts_the_brand_sent_have_no_selects(agent_client: Client, installation: ConnectorInstallation) -> None:
    report = ingest(installation, make_post("my internet is down", external_id="c1", author_id="cust-x"))
    case = Post.objects.get(pk=report.post_ids[0]).case
    assert case is not None
    ingest(installation, make_post("Sorry! DM us", external_id="b1", author_id="brand-nimbus",
                                   handle="NimbusCare", in_reply_to="c1"))
    own = Post.objects.get(external_id="b1")
    assert own.case_id == case.pk and own.direction == "outbound"
    html = agent_client.get(f"/cases/{case.pk}/live", headers=HX).content.decode()
    assert f"/posts/{own.pk}/labels" not in html
    response = agent_client.post(_url(case, own), {"task": "topic", "value": "billing"}, headers=HX)
    assert response.status_code == 422 and "only customer posts" in response.content.decode()


def test_without_htmx_the_form_redirects_back(agent_client: Client, case: Case) -> None:
    post = case.posts.get()
    response = agent_client.post(_url(case, post), {"task": "sentiment", "value": "positive"})
    assert response.status_code == 303
    assert response["Location"] == f"/cases/{case.pk}/#post-{post.pk}"
    assert LabelCorrection.objects.get().value == "positive"


def test_correction_needs_login_and_csrf(client: Client, case: Case, agent: User) -> None:
    post = case.posts.get()
    response = client.post(_url(case, post), {"task": "topic", "value": "billing"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(agent)
    assert strict.post(_url(case, post), {"task": "topic", "value": "billing"}, headers=HX).status_code == 403
    assert not LabelCorrection.objects.exists()


def test_a_topic_the_taxonomy_no_longer_has_is_shown_but_marked(agent_client: Client, case: Case) -> None:
    post = case.posts.get()
    post.triage = {**post.triage, "topic": {"value": "legacy_plan", "score": 0.4, "reasons": []}}
    post.save(update_fields=["triage"])
    html = agent_client.get(f"/cases/{case.pk}/live", headers=HX).content.decode()
    assert _selected(html, "topic") == "legacy_plan"
    assert "legacy_plan (not offered)" in html
