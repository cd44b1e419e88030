from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from caredesk.cases.models import Activity, Case, Post
from caredesk.connectors.models import ConnectorInstallation
from caredesk.triage.models import LabelCorrection
from factories import ingest, make_post

pytestmark = pytest.mark.django_db

MakeCase = Callable[..., Case]


def _correct(api: Client, post_id: int, body: object) -> tuple[int, dict[str, object]]:
    response = api.post(f"/api/posts/{post_id}/labels", body, content_type="application/json")
    return response.status_code, response.json()


def test_correction_returns_the_posts_labels(api: Client, agent: User, make_case: MakeCase) -> None:
    case = make_case()
    post = case.posts.get()
    status, body = _correct(api, post.pk, {"task": "sentiment", "value": "positive"})
    assert status == 200, body
    assert body["post_id"] == post.pk and body["case_id"] == case.pk
    labels = body["labels"]
    assert isinstance(labels, dict)
    assert set(labels) == {"complaint", "needs_reply", "sentiment", "topic", "spam"}
    assert labels["sentiment"] == {"value": "positive", "score": 1.0, "reasons": ["corrected by ana"],
                                   "corrected_by": "ana"}
    assert labels["topic"]["value"] == "outage" and labels["topic"]["corrected_by"] is None
    [correction] = body["corrections"]  # type: ignore[misc]
    assert correction["task"] == "sentiment" and correction["value"] == "positive"
    assert correction["previous_value"] == "negative" and correction["agent"] == "ana"
    assert correction["created_at"].endswith("Z")

    stored = LabelCorrection.objects.get()
    assert (stored.post_id, stored.agent) == (post.pk, agent)
    assert Activity.objects.filter(case=case, kind=Activity.Kind.LABEL_CORRECTED, actor=agent).count() == 1
    assert Case.objects.get(pk=case.pk).sentiment == "positive"


def test_boolean_values_as_json_booleans_or_strings(api: Client, make_case: MakeCase) -> None:
    post = make_case().posts.get()
    status, body = _correct(api, post.pk, {"task": "complaint", "value": False})
    assert status == 200, body
    assert body["labels"]["complaint"]["value"] is False  # type: ignore[index]
    status, body = _correct(api, post.pk, {"task": "spam", "value": "true"})
    assert status == 200 and body["labels"]["spam"]["value"] is True  # type: ignore[index]
    assert dict(LabelCorrection.objects.values_list("task", "value")) == {"complaint": "false", "spam": "true"}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"task": "urgency", "value": "1"}, "task: Input tag 'urgency'"),
        ({"task": "topic", "value": "weather"}, "unknown topic 'weather'"),
        ({"task": "sentiment", "value": "angry"}, "value: Input should be 'negative', 'neutral' or 'positive'"),
        ({"task": "needs_reply", "value": "perhaps"}, "value: Value error, must be true or false"),
        ({"task": "spam", "value": 1}, "value: Value error, must be true or false"),
        ({"task": "topic", "value": "x" * 41}, "value"),
        ({"task": "topic"}, "value: Field required"),
    ],
)
def test_bad_task_or_value_is_422(api: Client, make_case: MakeCase, body: dict[str, str], detail: str) -> None:
    post = make_case().posts.get()
    status, answer = _correct(api, post.pk, body)
    assert status == 422, answer
    assert detail in str(answer["detail"])
    assert not LabelCorrection.objects.exists()
    assert not Activity.objects.filter(kind=Activity.Kind.LABEL_CORRECTED).exists()


def test_missing_post_is_404_and_a_brand_post_422(api: Client, installation: ConnectorInstallation) -> None:
    status, body = _correct(api, 99999999, {"task": "topic", "value": "billing"})
    assert status == 404 and body["detail"] == "post 99999999 does not exist"
    ingest(installation, make_post("We're on it", external_id="own", author_id="brand-nimbus", handle="NimbusCare"))
    own = Post.objects.get(external_id="own")
    status, body = _correct(api, own.pk, {"task": "topic", "value": "billing"})
    assert status == 422 and "only customer posts" in str(body["detail"])


def test_correction_needs_authentication(make_case: MakeCase) -> None:
    post = make_case().posts.get()
    response = Client().post(f"/api/posts/{post.pk}/labels", {"task": "topic", "value": "billing"},
                             content_type="application/json")
    assert response.status_code == 401
    assert not LabelCorrection.objects.exists()


def test_openapi_documents_the_endpoint() -> None:
    schema = Client().get("/api/openapi.json").json()
    operation = schema["paths"]["/api/posts/{post_id}/labels"]["post"]
    assert operation["operationId"] == "correct_post_label"
    assert {"200", "401", "404", "422"} <= set(operation["responses"])
    # Which values a label takes depends on its task, and the schema says so.
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["discriminator"]["propertyName"] == "task"
    shapes = schema["components"]["schemas"]
    assert shapes["SentimentLabelIn"]["properties"]["value"]["enum"] == ["negative", "neutral", "positive"]
    assert shapes["BooleanLabelIn"]["properties"]["task"]["enum"] == ["complaint", "needs_reply", "spam"]
    assert all(set(shapes[name]["required"]) == {"task", "value"}
               for name in ("BooleanLabelIn", "SentimentLabelIn", "TopicLabelIn"))
    task_enum = schema["components"]["schemas"]["Task"]["enum"]
    assert task_enum == ["complaint", "needs_reply", "sentiment", "topic", "spam"]
