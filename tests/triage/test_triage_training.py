"""The training API: train, predict, explain, save and load without pickle, evaluate, cross-validate."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from caredesk.triage import classify, classify_one
from caredesk.triage.model.bundle import ModelBundle, TrainedModel, TrainingError
from caredesk.triage.training.train import (
    NB_MAX_CLASSES,
    Evaluation,
    cross_validate,
    evaluate,
    normalize_label,
    train_model,
)
from caredesk.triage.types import PostSignals
from caredesk.triage.vocabulary import TASKS

pytest.importorskip("sklearn")

# A task the shipped model knows nothing about: posts about the "zorblax" gadget versus the "quintz" service.
ZORBLAX = [
    f"my zorblax {w} today" for w in ("broke", "arrived", "is blue", "beeps", "glows", "hums", "is new", "works")
]
QUINTZ = [f"the quintz {w} again" for w in ("plan", "desk", "portal", "menu", "queue", "form", "line", "page")]


def gadget_data() -> tuple[list[str], list[str]]:
    texts = ZORBLAX + QUINTZ
    return texts, ["gadget"] * len(ZORBLAX) + ["service"] * len(QUINTZ)


@pytest.fixture(scope="module")
def topic_model() -> TrainedModel:
    texts, labels = gadget_data()
    return train_model(texts, labels, "topic", semantic=False)


def test_tasks_are_the_documented_ones() -> None:
    assert TASKS == ("complaint", "needs_reply", "sentiment", "topic", "spam")


@pytest.mark.parametrize(
    ("task", "raw", "want"),
    [
        ("complaint", "TRUE", "true"),
        ("complaint", "1", "true"),
        ("needs_reply", "yes", "true"),
        ("spam", "No", "false"),
        ("spam", 0, "false"),
        ("complaint", True, "true"),
        ("sentiment", " Negative ", "negative"),
        ("sentiment", "pos", "positive"),
        ("topic", "Refunds", "refunds"),
    ],
)
def test_labels_are_normalised(task: str, raw: object, want: str) -> None:
    assert normalize_label(raw, task) == want


@pytest.mark.parametrize(
    ("task", "raw"), [("complaint", "maybe"), ("sentiment", "angry"), ("topic", "  "), ("spam", None)]
)
def test_bad_labels_are_refused(task: str, raw: object) -> None:
    with pytest.raises(ValueError):
        normalize_label(raw, task)


def test_train_predict_learns_a_separable_task(topic_model: TrainedModel) -> None:
    assert topic_model.task == "topic"
    assert topic_model.classes == ("gadget", "service")
    new = ["my zorblax is broken", "the quintz portal is slow", "zorblax zorblax", "quintz"]
    assert topic_model.predict(new) == ["gadget", "service", "gadget", "service"]
    proba = topic_model.predict_proba(new)
    assert proba.shape == (4, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert topic_model.predict([]) == []
    assert topic_model.predict_proba([]).shape == (0, 2)


def test_unseen_spellings_borrow_weight_through_character_ngrams(topic_model: TrainedModel) -> None:
    # "zorblaxes" and "quintzes" were never seen; their character n-grams were ("flumph" shares none).
    gadget = topic_model.predict_proba(["zorblaxes", "flumph", "quintzes"])[:, 0]
    assert gadget[0] > gadget[1] + 0.05
    assert gadget[2] < gadget[1] - 0.05


def test_explain_names_the_deciding_words(topic_model: TrainedModel) -> None:
    why = topic_model.explain("my zorblax is broken", top=2)
    assert why and why[0].startswith("model: +'")
    assert any("zorblax" in w for w in why)
    assert len(why) <= 2


def test_metadata_describes_the_training(topic_model: TrainedModel) -> None:
    meta = topic_model.meta
    assert meta["n_examples"] == 16
    assert meta["class_counts"] == {"gadget": 8, "service": 8}
    assert meta["features"]["semantic"] is False
    assert meta["features"]["stack"] is True
    assert meta["trained_at"].endswith("+00:00")


def test_binary_task_classes_and_probabilities() -> None:
    texts = [f"refund please, charged twice for order {i}" for i in range(8)] + [
        f"lovely day at the beach number {i}" for i in range(8)
    ]
    model = train_model(texts, ["yes"] * 8 + ["no"] * 8, "complaint", semantic=False)
    assert model.classes == ("false", "true")
    assert model.predict(["charged twice, refund"]) == ["true"]
    assert model.predict_proba(["lovely beach day"])[0, 0] > 0.5


def test_one_class_and_bad_input_are_refused() -> None:
    with pytest.raises(TrainingError, match="two classes"):
        train_model(["a", "b"], ["true", "true"], "complaint", semantic=False)
    with pytest.raises(TrainingError, match="unknown task"):
        train_model(["a", "b"], ["x", "y"], "mood", semantic=False)
    with pytest.raises(TrainingError, match="no examples"):
        train_model([], [], "topic", semantic=False)
    with pytest.raises(TrainingError, match="example 1"):
        train_model(["a", "b"], ["true", "perhaps"], "spam", semantic=False)


def test_bundle_round_trips_through_file_and_bytes(topic_model: TrainedModel, tmp_path: Path) -> None:
    bundle = ModelBundle({"topic": topic_model})
    path = tmp_path / "brand.npz"
    bundle.save(path)
    texts = ["my zorblax is broken", "the quintz desk", "something else entirely", ""]
    for loaded in (ModelBundle.load(path), ModelBundle.from_bytes(bundle.to_bytes())):
        model = loaded.models["topic"]
        assert model.classes == topic_model.classes
        assert model.meta == topic_model.meta
        np.testing.assert_allclose(model.predict_proba(texts), topic_model.predict_proba(texts), atol=1e-6)


def test_model_file_holds_plain_arrays_only(topic_model: TrainedModel, tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    ModelBundle({"topic": topic_model}).save(path)
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
        header = json.loads(str(data["bundle"]))
    assert header["tasks"] == ["topic"]
    with zipfile.ZipFile(path) as zf:
        assert all(name.endswith(".npy") for name in zf.namelist())


def test_a_file_that_is_not_a_bundle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a caredesk triage model"):
        ModelBundle.load(path)


def test_evaluate_matches_hand_computed_figures() -> None:
    truth = ["pos", "pos", "pos", "neg", "neg", "neu"]
    pred = ["pos", "neg", "pos", "neg", "pos", "neg"]
    e = evaluate(truth, pred, ["neg", "neu", "pos"])
    assert isinstance(e, Evaluation)
    # neg: tp 1, predicted 3, actual 2 -> p 1/3, r 1/2, f1 0.4
    assert e.precision["neg"] == pytest.approx(1 / 3)
    assert e.recall["neg"] == pytest.approx(0.5)
    assert e.f1["neg"] == pytest.approx(0.4)
    # pos: tp 2, predicted 3, actual 3 -> p = r = f1 = 2/3
    assert e.f1["pos"] == pytest.approx(2 / 3)
    # neu: never predicted, one actual -> all 0
    assert (e.precision["neu"], e.recall["neu"], e.f1["neu"]) == (0.0, 0.0, 0.0)
    assert e.macro_f1 == pytest.approx((0.4 + 2 / 3 + 0.0) / 3)
    assert e.accuracy == pytest.approx(3 / 6)
    assert e.support == {"neg": 2, "neu": 1, "pos": 3}
    assert e.confusion == [[1, 0, 1], [1, 0, 0], [1, 0, 2]]
    text = e.format()
    assert "macro-F1" in text and "confusion matrix" in text and "0.400" in text


def test_evaluate_infers_classes_and_checks_lengths() -> None:
    assert evaluate(["a", "b"], ["b", "b"]).classes == ("a", "b")
    with pytest.raises(ValueError):
        evaluate(["a"], ["a", "b"])


def test_cross_validate_is_deterministic_and_pools_every_example() -> None:
    texts, labels = gadget_data()
    first = cross_validate(texts, labels, "topic", folds=4, seed=3, semantic=False)
    second = cross_validate(texts, labels, "topic", folds=4, seed=3, semantic=False)
    assert first == second
    assert sum(first.support.values()) == len(texts)
    assert first.macro_f1 >= 0.8


def test_brand_bundle_overrides_the_default_decision() -> None:
    texts = [f"the widget {w} is fine" for w in ("red", "big", "old", "new", "blue", "tall", "wide", "long")] + [
        f"hello from {w} town" for w in ("north", "south", "east", "west", "upper", "lower", "inner", "outer")
    ]
    # A brand that treats every widget post as a complaint (say, a recall is on).
    model = train_model(texts, ["true"] * 8 + ["false"] * 8, "complaint", semantic=False)
    bundle = ModelBundle({"complaint": model})
    post = PostSignals("the widget green is fine")
    default = classify_one(post)
    assert default.complaint.value is False
    branded = classify([post], model=bundle)[0]
    assert branded.complaint.value is True
    assert branded.complaint.reasons[0].startswith("brand model: +'")
    assert "widget" in branded.complaint.reasons[0]
    # Tasks the bundle lacks keep the default decision.
    assert branded.sentiment == default.sentiment
    assert branded.topic == default.topic


def test_brand_models_see_the_stack_they_were_trained_on() -> None:
    """A stacked brand model gets the default classifier's text-only scores over the default taxonomy, whatever
    taxonomy the brand passes and whatever the post's context (a direct message raises the default needs-reply)."""
    texts, labels = gadget_data()
    bundle = ModelBundle({"topic": train_model(texts, labels, "topic", semantic=False)})
    assert bundle.models["topic"].uses_stack
    taxonomy = {"gadget": ("Gadgets", ("zorblax",)), "other": ("Other", ())}
    posts = [PostSignals("my zorblax beeps"), PostSignals("the quintz menu again", is_direct=True, is_reply=True)]
    plain = classify(posts, model=bundle)
    branded = classify(posts, topics=taxonomy, model=bundle)
    # Same decision and score; the reasons may add the brand taxonomy's keyword hits after the brand model's.
    assert [(r.topic.value, r.topic.score) for r in branded] == [(r.topic.value, r.topic.score) for r in plain]
    assert [r.topic.value for r in plain] == ["gadget", "service"]
    alone = classify([PostSignals(posts[1].text)], model=bundle)[0]
    assert plain[1].topic.score == alone.topic.score


def test_brand_topic_model_may_add_topics() -> None:
    texts, labels = gadget_data()
    bundle = ModelBundle({"topic": train_model(texts, labels, "topic", semantic=False)})
    result = classify_one(PostSignals("my zorblax beeps"), model=bundle)
    assert result.topic.value == "gadget"
    assert 0.5 <= result.topic.score <= 0.99


@pytest.mark.parametrize("k", [2, 3])
def test_nb_scaling_folds_into_plain_linear_weights(k: int) -> None:
    """NB-LR fits on scaled features; the weights it returns must score the unscaled features the same way, so a
    saved model predicts exactly what was fitted."""
    from scipy import sparse

    from caredesk.triage.training.fitting import fit, fit_linear, nb_ratio

    rng = np.random.default_rng(0)
    y = rng.integers(0, k, size=120)
    text = sparse.random(120, 40, density=0.2, random_state=1, format="csr")
    text = text + sparse.csr_matrix((np.ones(120), (np.arange(120), y)), shape=(120, 40))  # class-bearing words
    dense = rng.normal(size=(120, 3))
    x = sparse.hstack([text, sparse.csr_matrix(dense)], format="csr")
    fitted = fit_linear(x, y, k, 2.0, "balanced", nb_columns=40)
    assert fitted.coef.shape == (43, 1 if k == 2 else k)
    presence = text.copy()
    presence.data[:] = 1.0
    cls = 1 if k == 2 else 0
    r = nb_ratio(presence, y == cls)
    assert r[cls] > 0  # the word that marks the class is scaled up for it
    scaled = sparse.hstack([text @ sparse.diags(r), sparse.csr_matrix(dense)], format="csr")
    direct = fit(scaled, (y == cls).astype(np.int64), 2.0, "balanced").decision_function(scaled)
    folded = np.asarray(x @ fitted.coef[:, 0 if k == 2 else cls]) + fitted.bias[0 if k == 2 else cls]
    np.testing.assert_allclose(folded, direct, rtol=1e-6, atol=1e-6)
    assert (fitted.predict(x) == y).mean() > 0.9


def test_nb_scaling_for_few_classes_one_multinomial_model_for_many() -> None:
    texts, labels = gadget_data()
    model = train_model(texts, labels, "topic", semantic=False)
    assert model.meta["features"]["nb_scaling"] is True
    assert model.predict(["my zorblax beeps again"]) == ["gadget"]
    # A taxonomy of more than NB_MAX_CLASSES topics: one yes/no model per class would cost its rare classes.
    extra = [f"the {w} is {k}" for w in ("plinth", "vortle") for k in ("late", "lost", "cold", "gone", "odd", "bent")]
    many = train_model(
        texts + extra * 2, labels + ["plinth"] * 6 + ["vortle"] * 6 + ["plinth"] * 6 + ["vortle"] * 6, "topic",
        semantic=False,
    )
    assert len(many.classes) > NB_MAX_CLASSES
    assert many.meta["features"]["nb_scaling"] is False
    assert many.predict([texts[0], texts[-1], "the vortle is late"]) == ["gadget", "service", "vortle"]
