"""Trained triage models and the bundle that holds them: predicting, saving and loading without pickle.

One :class:`TrainedModel` decides one task (complaint, needs_reply, sentiment, topic or spam). It is a logistic
regression over

* the text features of :mod:`caredesk.triage.model.vectorize` (word types, known bigrams, hashed character n-grams,
  idf-weighted and length-normalised),
* the shipped default classifier's scores and rule evidence ("stacking": a brand model starts from what the default
  model knows and only has to learn where the brand differs), unless ``stack`` is off (the shipped model itself),
* the sentence embedding of :mod:`caredesk.triage.semantic` when the model was trained with it.

Predicting needs numpy only; :mod:`caredesk.triage.training.train` fits the weights. A :class:`ModelBundle` holds
one model per task and is what ``caredesk triage predict --model`` and per-brand models load: an ``.npz`` of plain
arrays plus JSON metadata, read with ``allow_pickle=False``, so a model file cannot run code (and names no module
path, so moving code does not break a saved model).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from caredesk.triage.model.vectorize import (
    GRAM_BUCKETS,
    Encoded,
    F32Array,
    FloatArray,
    IntArray,
    Scorer,
    TextWeights,
    top_terms,
)
from caredesk.triage.semantic.finetune import Tuned
from caredesk.triage.text.tokens import TokenBatch, tokenize

FORMAT = "caredesk-triage-bundle"
FORMAT_VERSION = 1

# Block scales. The text block has norm 1 per post; the ~28 stacked scores are each of order 1, so unscaled they would
# outweigh the words under the same L2 penalty and a brand model would mostly re-learn the default one. The
# embedding is a unit vector already.
DENSE_SCALE = 0.4
SEMANTIC_SCALE = 1.0


class TrainingError(ValueError):
    """Labels or texts that cannot train a model (one class only, unknown task, empty input), or a model that needs
    sentence embeddings where they are not available. Here rather than in training, because predicting raises it too."""


# --- features beside the text -----------------------------------------------------------------------------------


def semantic_module() -> Any | None:
    """The optional sentence-embedding module when it is installed and usable, else None."""
    try:
        from caredesk.triage import semantic
    except ImportError:
        return None
    try:
        return semantic if semantic.available() else None
    except Exception:  # noqa: BLE001 - a broken optional extra must not break the default path
        return None


def _embed(texts: Sequence[str], progress: bool = False) -> FloatArray:
    module = semantic_module()
    if module is None:
        raise TrainingError("this model uses sentence embeddings, but caredesk.triage.semantic is not available")
    out: FloatArray = np.asarray(module.embed(list(texts), progress=progress), dtype=np.float64)
    return out * SEMANTIC_SCALE


# The shipped classifier's stack features, for models trained with ``stack``. The classifier sits above this module
# (its Engine holds ModelBundles), so it installs its feature function here when it is imported rather than being
# imported from here: the import graph stays acyclic (tests/triage/test_triage_imports.py). Importing any part of
# caredesk.triage runs the package's __init__, which imports the classifier, so the hook is always in place.
StackFeatures = Callable[[Sequence[str], TokenBatch | None], FloatArray]
_stack_features: list[StackFeatures] = []


def set_stack_features(features: StackFeatures) -> None:
    """Install the shipped classifier's stack-feature function (called once, by the classifier module)."""
    _stack_features[:] = [features]


def _stack(texts: Sequence[str], batch: TokenBatch | None = None) -> FloatArray:
    if not _stack_features:
        raise RuntimeError("caredesk.triage.model.classifier has not installed its stack features")
    return _stack_features[0](texts, batch) * DENSE_SCALE


@dataclass(frozen=True, slots=True)
class Dense:
    """Dense features beside the text: which kinds, and precomputed values when the caller has them."""

    stack: FloatArray | None
    semantic: FloatArray | None

    def matrix(self, n: int) -> FloatArray:
        parts = [p for p in (self.stack, self.semantic) if p is not None]
        return np.hstack(parts) if parts else np.zeros((n, 0))


# --- the model ----------------------------------------------------------------------------------------------------


def _softmax(z: FloatArray) -> FloatArray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: FloatArray = e / e.sum(axis=1, keepdims=True)
    return out


class TrainedModel:
    """One task's linear model. ``classes`` are sorted; binary tasks have ("false", "true")."""

    def __init__(
        self,
        task: str,
        classes: tuple[str, ...],
        text: TextWeights,
        w_dense: F32Array,
        bias: FloatArray,
        meta: dict[str, Any],
        tuned: Tuned | None = None,
    ) -> None:
        self.task = task
        self.classes = classes
        self.text = text
        self.w_dense = w_dense  # (n dense features, K)
        self.bias = bias  # (K,)
        self.meta = meta
        self.tuned = tuned  # a fine-tuned encoder whose logits are averaged with the linear model's
        self._scorer: Scorer | None = None

    # Feature configuration, from the metadata so that a loaded model uses what it was trained with.
    @property
    def uses_stack(self) -> bool:
        return bool(self.meta["features"]["stack"])

    @property
    def uses_semantic(self) -> bool:
        return bool(self.meta["features"]["semantic"])

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:
            self._scorer = Scorer([self.text])
        return self._scorer

    def dense_features(self, texts: Sequence[str], batch: TokenBatch | None = None) -> Dense:
        return Dense(
            stack=_stack(texts, batch) if self.uses_stack else None,
            semantic=_embed(texts) if self.uses_semantic else None,
        )

    def logits_from(self, text_logits: F32Array, dense: Dense, texts: Sequence[str] = ()) -> FloatArray:
        """Full logits from the text part (already scored, e.g. by a bundle's shared scorer) and dense features;
        a fine-tuned model also needs the ``texts``."""
        z = text_logits.astype(np.float64) + self.bias
        d = dense.matrix(len(text_logits))
        if d.shape[1]:
            z += d @ self.w_dense.astype(np.float64)
        if self.tuned is not None:
            if len(texts) != len(z):
                raise ValueError("a fine-tuned model needs the texts")
            # The mean of the two models' logits: for classes, the geometric mean of their probabilities.
            z = (z + self.tuned.logits(texts)) / 2
        return z

    def proba_from_logits(self, z: FloatArray) -> FloatArray:
        if len(self.classes) == 2:
            p1 = 1.0 / (1.0 + np.exp(-np.clip(z[:, 0], -35, 35)))
            return np.column_stack([1.0 - p1, p1])
        return _softmax(z)

    def _encode(self, texts: Sequence[str], dense: Dense | None) -> tuple[Encoded, FloatArray]:
        batch = tokenize(texts)
        enc = self.scorer.encode(batch)
        z = self.logits_from(enc.logits, dense if dense is not None else self.dense_features(texts, batch), texts)
        return enc, z

    def predict_proba(self, texts: Sequence[str], *, dense: Dense | None = None) -> FloatArray:
        """(n, len(classes)) probabilities. ``dense`` passes precomputed dense features (cross-validation)."""
        if not len(texts):
            return np.zeros((0, len(self.classes)))
        return self.proba_from_logits(self._encode(texts, dense)[1])

    def predict(self, texts: Sequence[str], *, dense: Dense | None = None) -> list[str]:
        if not len(texts):
            return []
        idx = self.predict_proba(texts, dense=dense).argmax(axis=1)
        return [self.classes[i] for i in idx.tolist()]

    def decision_columns(self, z: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
        """Per post: predicted class index, the score column behind it, and the sign of that column's evidence."""
        if len(self.classes) == 2:
            pred = (z[:, 0] > 0).astype(np.int64)
            return pred, np.zeros(len(z), dtype=np.int64), np.where(pred == 1, 1.0, -1.0)
        pred = z.argmax(axis=1).astype(np.int64)
        return pred, pred, np.ones(len(z))

    def explain(self, text: str, top: int = 3) -> tuple[str, ...]:
        """The words that pushed this text towards its predicted class: ("model: +'refund'", "model: +'charged'")."""
        enc, z = self._encode([text], None)
        _pred, column, sign = self.decision_columns(z)
        found = top_terms(enc, column, sign, 0, prefix="", top=top)[0]
        if not found:
            return ()
        return tuple(f"model: +{piece}" for piece in found.split(" +")[1:])


# --- saving ---------------------------------------------------------------------------------------------------------


def _model_arrays(model: TrainedModel) -> dict[str, npt.NDArray[Any]]:
    t = model.text
    rows = np.flatnonzero(np.any(t.w_gram != 0, axis=1)).astype(np.int32)
    p = f"{model.task}__"
    meta = {**model.meta, "task": model.task, "classes": list(model.classes)}
    tuned = model.tuned.arrays(p + "tuned__") if model.tuned is not None else {}
    return tuned | {
        p + "meta": np.array(json.dumps(meta, sort_keys=True)),
        p + "vocab": np.array(t.vocab if t.vocab else ("",), dtype=str),
        p + "idf": t.idf.astype(np.float64),
        p + "bigrams": t.bigrams.astype(np.int32),
        p + "bigram_idf": t.bigram_idf.astype(np.float64),
        p + "w_word": t.w_word.astype(np.float32),
        p + "gram_rows": rows,
        p + "gram_values": t.w_gram[rows].astype(np.float32),
        p + "w_bigram": t.w_bigram.astype(np.float32),
        p + "w_dense": model.w_dense.astype(np.float32),
        p + "bias": model.bias.astype(np.float64),
    }


def _model_from(data: Any, task: str) -> TrainedModel:
    p = f"{task}__"
    meta = json.loads(str(data[p + "meta"]))
    vocab = tuple(str(w) for w in data[p + "vocab"])
    w_word = data[p + "w_word"].astype(np.float32)
    if len(vocab) != len(w_word):  # the placeholder written for an empty vocabulary
        vocab = ()
    k = w_word.shape[1]
    w_gram = np.zeros((GRAM_BUCKETS, k), dtype=np.float32)
    w_gram[data[p + "gram_rows"].astype(np.int64)] = data[p + "gram_values"]
    text = TextWeights(
        vocab=vocab,
        idf=data[p + "idf"].astype(np.float64),
        bigrams=data[p + "bigrams"].astype(np.int64).reshape(-1, 2),
        bigram_idf=data[p + "bigram_idf"].astype(np.float64),
        w_word=w_word,
        w_gram=w_gram,
        w_bigram=data[p + "w_bigram"].astype(np.float32).reshape(-1, k),
    )
    classes = tuple(str(c) for c in meta.pop("classes"))
    meta.pop("task", None)
    tuned = Tuned.from_arrays(data, p + "tuned__") if p + "tuned__meta" in data.files else None
    return TrainedModel(task, classes, text, data[p + "w_dense"].astype(np.float32), data[p + "bias"], meta, tuned)


@dataclass(frozen=True)
class Mix:
    """A learned combination of a few named scores into one task's decision (multinomial logistic regression).

    The shipped model uses one for sentiment: the lexicon valence, the sentiment model's logits and the complaint
    evidence are weighed by ``weights`` (one row per input, one column per class) instead of by hand-set constants.
    ``inputs`` name columns of the default classifier's stack features (``classifier.STACK_FEATURES``).
    """

    task: str
    inputs: tuple[str, ...]
    classes: tuple[str, ...]
    weights: FloatArray  # (len(inputs), len(classes))
    bias: FloatArray  # (len(classes),)
    meta: dict[str, Any]

    def logits(self, x: FloatArray) -> FloatArray:
        out: FloatArray = x @ self.weights + self.bias
        return out


def _mix_arrays(mix: Mix) -> dict[str, npt.NDArray[Any]]:
    p = f"mix__{mix.task}__"
    meta = {**mix.meta, "inputs": list(mix.inputs), "classes": list(mix.classes)}
    return {
        p + "meta": np.array(json.dumps(meta, sort_keys=True)),
        p + "weights": mix.weights.astype(np.float64),
        p + "bias": mix.bias.astype(np.float64),
    }


def _mix_from(data: Any, task: str) -> Mix:
    p = f"mix__{task}__"
    meta = json.loads(str(data[p + "meta"]))
    inputs = tuple(str(x) for x in meta.pop("inputs"))
    classes = tuple(str(c) for c in meta.pop("classes"))
    weights = data[p + "weights"].astype(np.float64)
    bias = data[p + "bias"].astype(np.float64)
    if weights.shape != (len(inputs), len(classes)) or bias.shape != (len(classes),):
        raise ValueError(f"mix {task!r}: weights {weights.shape} do not match {len(inputs)} inputs x {classes}")
    return Mix(task, inputs, classes, weights, bias, meta)


class ModelBundle:
    """Models for several tasks, saved together. Safe to share between threads once loaded.

    ``mixes`` are optional learned combinations (see :class:`Mix`); only the shipped default bundle has them.
    """

    def __init__(self, models: dict[str, TrainedModel] | None = None, mixes: dict[str, Mix] | None = None) -> None:
        self.models: dict[str, TrainedModel] = dict(models or {})
        for task, model in self.models.items():
            if task != model.task:
                raise ValueError(f"model for {model.task!r} filed under {task!r}")
        self.mixes: dict[str, Mix] = dict(mixes or {})
        for task, mix in self.mixes.items():
            if task != mix.task:
                raise ValueError(f"mix for {mix.task!r} filed under {task!r}")
        self._scorer: Scorer | None = None

    @property
    def scorer(self) -> Scorer:
        """One scorer over all the bundle's models (one pass over the tokens for every task)."""
        if self._scorer is None:
            self._scorer = Scorer([m.text for m in self.models.values()])
        return self._scorer

    def _write(self, fh: Any) -> None:
        arrays: dict[str, npt.NDArray[Any]] = {
            "bundle": np.array(
                json.dumps(
                    {"format": FORMAT, "version": FORMAT_VERSION, "tasks": list(self.models), "mixes": list(self.mixes)}
                )
            )
        }
        for model in self.models.values():
            arrays.update(_model_arrays(model))
        for mix in self.mixes.values():
            arrays.update(_mix_arrays(mix))
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]

    def save(self, path: str | Path) -> None:
        with Path(path).open("wb") as fh:
            self._write(fh)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        self._write(buf)
        return buf.getvalue()

    @classmethod
    def _read(cls, source: Any) -> ModelBundle:
        with np.load(source, allow_pickle=False) as data:
            if "bundle" not in data.files:
                raise ValueError("not a caredesk triage model file (no bundle header)")
            header = json.loads(str(data["bundle"]))
            if header.get("format") != FORMAT or int(header.get("version", 0)) > FORMAT_VERSION:
                raise ValueError(f"unsupported model file format {header.get('format')!r} v{header.get('version')}")
            return cls(
                {task: _model_from(data, task) for task in header["tasks"]},
                {task: _mix_from(data, task) for task in header.get("mixes", [])},
            )

    @classmethod
    def load(cls, path: str | Path) -> ModelBundle:
        return cls._read(Path(path))

    @classmethod
    def from_bytes(cls, data: bytes) -> ModelBundle:
        return cls._read(io.BytesIO(data))
