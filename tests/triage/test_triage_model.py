"""The shipped model is reproducible from the package's example files, and loads without pickle."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from caredesk.triage.model.bundle import ModelBundle
from caredesk.triage.rules.topics import DEFAULT_TOPICS
from caredesk.triage.training.build import (
    BANKING77,
    MIX_INPUTS,
    MODEL_FILE,
    SHIPPED_TASKS,
    WRITTEN_FILE,
    build,
    has_public_data,
    load_examples,
    load_jsonl,
    load_written,
    same_bundle,
    written_files,
)

SENTIMENTS = {"negative", "neutral", "positive"}


def test_written_examples_are_well_formed() -> None:
    assert written_files()[0] == WRITTEN_FILE
    assert len(load_jsonl(WRITTEN_FILE, "written")) >= 700
    written = load_written()
    assert len(written) >= 3000
    assert len({e.text.lower() for e in written}) == len(written)
    for e in written:
        assert set(e.labels) == {"complaint", "needs_reply", "sentiment", "topic", "spam"}, e.text
        assert e.labels["sentiment"] in SENTIMENTS
        assert e.labels["topic"] in DEFAULT_TOPICS
        # Complaints always need a reply; spam never does.
        if e.labels["complaint"] == "true":
            assert e.labels["needs_reply"] == "true", e.text
        if e.labels["spam"] == "true" and e.labels["complaint"] == "false":
            assert e.labels["needs_reply"] == "false", e.text
    raw = [
        line
        for name in written_files()
        for line in resources.files("caredesk.triage").joinpath(name).read_text(encoding="utf-8").splitlines()
    ]
    industries = {json.loads(line)["industry"] for line in raw}
    assert len(industries - {"mixed", "spam"}) >= 10


needs_public_data = pytest.mark.skipif(
    not has_public_data(), reason="the public training sets are not beside the repository (../shared/data)"
)


@needs_public_data
def test_weak_examples_come_only_from_the_permissive_sets() -> None:
    weak = [e for e in load_examples() if e.source not in ("seed", "written")]
    sources = {e.source.split(":")[0] for e in weak}
    assert sources == {"banking77", "ibm-twitter-cdp"}
    for e in weak:
        assert e.labels["needs_reply"] == "true"
        if e.source.startswith("banking77:"):
            topic, complaint = BANKING77[e.source.split(":", 1)[1]]
            assert e.labels["topic"] == topic
            assert e.labels["complaint"] == ("true" if complaint else "false")
        assert "sentiment" not in e.labels


def test_banking77_mapping_uses_default_topics() -> None:
    assert len(BANKING77) == 77
    assert {topic for topic, _ in BANKING77.values()} <= set(DEFAULT_TOPICS)


@needs_public_data
def test_examples_never_repeat_a_text() -> None:
    examples = load_examples()
    assert len({e.text.strip().lower() for e in examples}) == len(examples)


@needs_public_data
def test_shipped_weights_match_a_fresh_build() -> None:
    pytest.importorskip("sklearn")
    shipped = ModelBundle.load(Path(str(resources.files("caredesk.triage") / MODEL_FILE)))
    assert same_bundle(build(), shipped), "run: python -m caredesk.triage.training.build"


def test_weights_file_has_no_pickled_objects(tmp_path: Path) -> None:
    shipped = Path(str(resources.files("caredesk.triage") / MODEL_FILE))
    with np.load(shipped, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    bundle = ModelBundle.load(shipped)
    assert tuple(bundle.models) == SHIPPED_TASKS
    assert bundle.models["sentiment"].classes == ("negative", "neutral", "positive")
    assert set(bundle.models["topic"].classes) == set(DEFAULT_TOPICS)
    for model in bundle.models.values():
        assert model.meta["features"]["stack"] is False
        assert model.meta["features"]["semantic"] is False
    mix = bundle.mixes["sentiment"]
    assert mix.inputs == MIX_INPUTS
    assert mix.weights.shape == (len(MIX_INPUTS), 3)
    bundle.save(tmp_path / "copy.npz")
    assert same_bundle(bundle, ModelBundle.load(tmp_path / "copy.npz"), atol=0.0)


def test_sentiment_mix_decides_clear_cases_the_obvious_way() -> None:
    """The learned weights are collinear (complaint evidence already contains the valence), so they are checked by
    what they decide on clear-cut inputs rather than one by one."""
    mix = ModelBundle.load(Path(str(resources.files("caredesk.triage") / MODEL_FILE))).mixes["sentiment"]
    cases = {
        "negative": dict(valence=-0.8, model_negative=1.0, model_neutral=-0.5, model_positive=-0.5,
                         complaint_logit=1.5, complaint_cues=1.0),
        "positive": dict(valence=0.8, model_negative=-0.5, model_neutral=-0.5, model_positive=1.0,
                         complaint_logit=-1.0, complaint_cues=0.0),
        "neutral": dict(valence=0.0, model_negative=-0.5, model_neutral=1.0, model_positive=-0.5,
                        complaint_logit=-0.5, complaint_cues=0.0),
    }
    for expected, inputs in cases.items():
        x = np.array([[inputs[name] for name in mix.inputs]])
        assert mix.classes[int(np.argmax(mix.logits(x)))] == expected


def test_a_bundle_without_a_mix_still_loads_and_round_trips(tmp_path: Path) -> None:
    shipped = ModelBundle.load(Path(str(resources.files("caredesk.triage") / MODEL_FILE)))
    bare = ModelBundle(shipped.models)
    bare.save(tmp_path / "bare.npz")
    assert ModelBundle.load(tmp_path / "bare.npz").mixes == {}
