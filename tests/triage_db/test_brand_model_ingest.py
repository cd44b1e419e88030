"""A brand's own model in use: ingest labels posts with it, and `caredesk triage train` builds it from corrections."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from caredesk.cases.models import Post
from caredesk.connectors.models import ConnectorInstallation
from caredesk.triage.actions import do_correct_label, lock_post
from caredesk.triage.brand_models import corrections_dataset, store_brand_model
from caredesk.triage.model.bundle import ModelBundle
from caredesk.triage.models import BrandTriageModel
from caredesk.triage.training.train import train_model
from factories import T0, ingest, make_brand, make_installation, make_post

pytestmark = pytest.mark.django_db

# A gaming brand whose customers praise with "wicked" and "insane"; the shipped model reads both as negative.
PRAISE = [
    "the zorblax update is wicked",
    "zorblax raid mode is insane, love it",
    "wicked new skins on zorblax today",
    "insane graphics in the zorblax patch",
    "zorblax tournament was wicked fun",
    "that zorblax finale was insane",
    "new zorblax map is wicked good",
    "insane loot drops on zorblax this week",
]
COMPLAINTS = [
    "zorblax keeps crashing, awful",
    "my zorblax account got banned for nothing, terrible",
    "zorblax servers down again, useless",
    "refund my zorblax pass, worst purchase",
    "zorblax lag is horrible tonight",
    "zorblax support never answers, disappointed",
    "zorblax charged me twice, angry",
    "zorblax login broken again, hate this",
]
PROBE = "the zorblax season finale is wicked"


@pytest.fixture
def installation(db: None) -> ConnectorInstallation:
    return make_installation(make_brand("Zorblax"))


def _ingest_one(installation: ConnectorInstallation, text: str, external_id: str) -> Post:
    report = ingest(installation, make_post(text, external_id=external_id, author_id=f"a-{external_id}"))
    return Post.objects.get(pk=report.post_ids[0])


def _sentiment_bundle() -> ModelBundle:

    texts = PRAISE + COMPLAINTS
    labels = ["positive"] * len(PRAISE) + ["negative"] * len(COMPLAINTS)
    return ModelBundle({"sentiment": train_model(texts, labels, "sentiment", semantic=False)})


def test_ingest_uses_the_brands_active_model(installation: ConnectorInstallation) -> None:
    default = _ingest_one(installation, PROBE, "before")
    shipped_reading = default.triage["sentiment"]["value"]
    assert shipped_reading != "positive"  # "wicked" is slang the shipped model does not read as praise

    store_brand_model(installation.brand.slug, _sentiment_bundle(), {"n_examples": 16})
    post = _ingest_one(installation, PROBE, "after")
    sentiment = post.triage["sentiment"]
    assert sentiment["value"] == "positive"
    assert any("brand model" in reason for reason in sentiment["reasons"]), sentiment["reasons"]

    # Another brand still gets the shipped model.
    other = make_installation(make_brand("Elsewhere"))
    assert _ingest_one(other, PROBE, "other").triage["sentiment"]["value"] == shipped_reading

    # Deactivated: back to the shipped model on the next batch.
    BrandTriageModel.objects.update(active=False)
    assert _ingest_one(installation, PROBE, "again").triage["sentiment"]["value"] == shipped_reading


def test_corrections_train_the_brand_model_through_the_cli(
    installation: ConnectorInstallation, agent: User, tmp_path: Path
) -> None:
    from caredesk.cli import main

    # Agents correct what the shipped model got wrong (and confirm what it got right).
    for i, text in enumerate(PRAISE + COMPLAINTS):
        post = _ingest_one(installation, text, f"c{i}")
        with transaction.atomic():
            locked = lock_post(post.pk)
            assert locked is not None
            do_correct_label(locked, "sentiment", "positive" if text in PRAISE else "negative", agent,
                             T0 + timedelta(minutes=i))
    texts, labels = corrections_dataset(installation.brand.slug, "sentiment")
    assert len(texts) == 16 and labels.count("positive") == 8

    code = main(["triage", "train", "--data-dir", str(tmp_path), "--brand", installation.brand.slug,
                 "--from-corrections", "--task", "sentiment", "--no-semantic", "--quiet"])
    assert code == 0
    row = BrandTriageModel.objects.get(brand=installation.brand, active=True)
    assert row.tasks == ["sentiment"] and row.n_examples == 16

    post = _ingest_one(installation, PROBE, "probe")
    assert post.triage["sentiment"]["value"] == "positive"


def test_training_one_task_keeps_the_brands_other_tasks(installation: ConnectorInstallation) -> None:
    slug = installation.brand.slug
    store_brand_model(slug, _sentiment_bundle(), {"sentiment": {"n_examples": 16}})
    texts = PRAISE + COMPLAINTS
    complaint = train_model(texts, ["false"] * len(PRAISE) + ["true"] * len(COMPLAINTS), "complaint", semantic=False)
    store_brand_model(slug, ModelBundle({"complaint": complaint}), {"complaint": {"n_examples": 16}})

    row = BrandTriageModel.objects.get(active=True)
    assert row.tasks == ["complaint", "sentiment"]
    assert row.metrics == {"sentiment": {"n_examples": 16}, "complaint": {"n_examples": 16}}
    loaded = ModelBundle.from_bytes(bytes(row.bundle))
    assert loaded.models["complaint"].classes == ("false", "true")
    assert loaded.models["sentiment"].classes == ("negative", "positive")
    assert _ingest_one(installation, PROBE, "both").triage["sentiment"]["value"] == "positive"

    store_brand_model(slug, ModelBundle({"complaint": complaint}), keep_other_tasks=False)
    assert BrandTriageModel.objects.get(active=True).tasks == ["complaint"]
    assert BrandTriageModel.objects.count() == 3
