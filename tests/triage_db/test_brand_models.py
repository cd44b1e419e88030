"""A brand's training data from corrections, storing its trained bundles, and loading the active one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from caredesk.accounts.models import Brand
from caredesk.cases.models import Post
from caredesk.connectors.models import ConnectorInstallation
from caredesk.triage.actions import do_correct_label, do_store_brand_model, lock_post
from caredesk.triage.brand_models import BrandModelError, active_bundle, corrections_dataset, store_brand_model
from caredesk.triage.model.bundle import ModelBundle
from caredesk.triage.models import BrandTriageModel, Task
from caredesk.triage.vocabulary import TASKS
from factories import T0, ingest, make_brand, make_installation, make_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def installation(db: None) -> ConnectorInstallation:
    return make_installation()


def _post(installation: ConnectorInstallation, text: str, external_id: str) -> Post:
    report = ingest(installation, make_post(text, external_id=external_id, author_id=f"a-{external_id}"))
    return Post.objects.get(pk=report.post_ids[0])


def _correct(post: Post, task: str, value: str, agent: User, minutes: int) -> None:
    with transaction.atomic():
        locked = lock_post(post.pk)
        assert locked is not None
        do_correct_label(locked, task, value, agent, T0 + timedelta(minutes=minutes))


def test_tasks_match_the_trainer() -> None:
    assert tuple(Task.values) == TASKS


def test_corrections_dataset_pairs_texts_with_corrected_values(
    installation: ConnectorInstallation, agent: User
) -> None:
    a = _post(installation, "my internet is down", "a")
    b = _post(installation, "the app keeps crashing", "b")
    c = _post(installation, "thanks, great service", "c")
    _correct(b, "sentiment", "neutral", agent, minutes=1)
    _correct(a, "sentiment", "positive", agent, minutes=2)
    _correct(a, "topic", "billing", agent, minutes=3)
    _correct(c, "sentiment", "negative", agent, minutes=4)
    _correct(b, "sentiment", "positive", agent, minutes=5)  # replaces b's first correction, and moves it last

    # Another brand's corrections are not this brand's training data.
    other = make_installation(make_brand("Other"))
    _correct(_post(other, "my internet is down", "o"), "sentiment", "neutral", agent, minutes=6)

    slug = installation.brand.slug
    assert corrections_dataset(slug, "sentiment") == (
        ["my internet is down", "thanks, great service", "the app keeps crashing"],
        ["positive", "negative", "positive"],
    )
    assert corrections_dataset(slug, "topic") == (["my internet is down"], ["billing"])
    assert corrections_dataset(slug, "spam") == ([], [])
    assert corrections_dataset("other", "sentiment") == (["my internet is down"], ["neutral"])


def test_corrections_dataset_refuses_unknown_brand_or_task(installation: ConnectorInstallation) -> None:
    with pytest.raises(BrandModelError, match="no brand with slug 'nope'"):
        corrections_dataset("nope", "sentiment")
    with pytest.raises(BrandModelError, match="unknown task 'urgency'"):
        corrections_dataset(installation.brand.slug, "urgency")


def test_store_brand_model_keeps_one_active_and_the_history(installation: ConnectorInstallation) -> None:
    brand = installation.brand
    store_brand_model(brand.slug, ModelBundle(), {"sentiment": {"macro_f1": 0.5, "n_examples": 12}})
    first = BrandTriageModel.objects.get()
    assert first.active and first.n_examples == 12 and first.metrics == {"sentiment": {"macro_f1": 0.5,
                                                                                       "n_examples": 12}}
    assert first.tasks == []
    assert ModelBundle.from_bytes(bytes(first.bundle)).models == {}

    store_brand_model(brand.slug, ModelBundle(), {"n_examples": 30}, now=T0)
    store_brand_model(brand.slug, ModelBundle(), n_examples=7)
    rows = list(BrandTriageModel.objects.filter(brand=brand).order_by("id"))
    assert [r.active for r in rows] == [False, False, True]
    assert [r.n_examples for r in rows] == [12, 30, 7]
    assert rows[1].created_at == T0

    # Another brand's active model is left alone.
    other = make_brand("Other")
    store_brand_model(other.slug, ModelBundle())
    assert BrandTriageModel.objects.filter(active=True).count() == 2
    with pytest.raises(BrandModelError):
        store_brand_model("nope", ModelBundle())


def test_metrics_from_numpy_are_stored_as_plain_json(installation: ConnectorInstallation) -> None:
    import numpy as np

    store_brand_model(installation.brand.slug, ModelBundle(), {"f1": np.float64(0.25), "counts": np.array([1, 2])})
    assert BrandTriageModel.objects.get().metrics == {"f1": 0.25, "counts": [1, 2]}


def test_two_active_models_of_one_brand_are_impossible(installation: ConnectorInstallation) -> None:
    brand = installation.brand
    BrandTriageModel.objects.create(brand=brand, bundle=b"x", created_at=T0, active=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        BrandTriageModel.objects.create(brand=brand, bundle=b"y", created_at=T0, active=True)


def test_store_rolls_back_with_its_caller(installation: ConnectorInstallation) -> None:
    brand = installation.brand
    store_brand_model(brand.slug, ModelBundle())
    with pytest.raises(RuntimeError), transaction.atomic():
        do_store_brand_model(brand, ModelBundle(), None, 3, T0)
        raise RuntimeError("boom")
    [row] = BrandTriageModel.objects.all()
    assert row.active


# ---------------------------------------------------------------------------------------------------------------
# The active bundle and its cache


def _queries(fn: Any) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        result = fn()
    return result, [q["sql"] for q in ctx.captured_queries]


def test_active_bundle_is_none_without_a_model(installation: ConnectorInstallation) -> None:
    assert active_bundle(installation.brand_id) is None


def test_active_bundle_is_loaded_once_and_reloaded_when_the_active_row_changes(
    installation: ConnectorInstallation,
) -> None:
    brand: Brand = installation.brand
    store_brand_model(brand.slug, ModelBundle())
    first, sql = _queries(lambda: active_bundle(brand.pk))
    assert isinstance(first, ModelBundle)
    assert len(sql) == 2  # the active id, then the bytes

    again, sql = _queries(lambda: active_bundle(brand.pk))
    assert again is first
    assert len(sql) == 1 and '"bundle"' not in sql[0]  # one cheap query, no bytes

    store_brand_model(brand.slug, ModelBundle())
    newer = active_bundle(brand.pk)
    assert isinstance(newer, ModelBundle) and newer is not first

    BrandTriageModel.objects.filter(brand=brand).update(active=False)
    assert active_bundle(brand.pk) is None


def test_a_bundle_that_cannot_be_read_falls_back_to_the_default_model(
    installation: ConnectorInstallation, caplog: pytest.LogCaptureFixture
) -> None:
    BrandTriageModel.objects.create(brand=installation.brand, bundle=b"not a bundle", created_at=T0, active=True)
    assert active_bundle(installation.brand_id) is None
    assert "could not be loaded" in caplog.text
    caplog.clear()
    _result, sql = _queries(lambda: active_bundle(installation.brand_id))
    assert len(sql) == 1 and not caplog.text  # remembered: not parsed (nor logged) again every batch
