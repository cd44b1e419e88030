"""Training triage models from labelled posts, and evaluating them (cross-validation, precision/recall/F1).

The models themselves (:class:`TrainedModel`, :class:`ModelBundle`: predicting, saving, loading) live in
:mod:`caredesk.triage.model.bundle`; this module fits their weights with scikit-learn. Which features a model uses:

* the text features of :mod:`caredesk.triage.model.vectorize`,
* the shipped default classifier's scores and rule evidence ("stacking"), unless ``stack`` is off (the shipped model
  itself),
* the sentence embedding of :mod:`caredesk.triage.semantic` when ``semantic`` is true, or None and it is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from caredesk.triage.model.bundle import (
    Dense,
    Mix,
    ModelBundle,
    TrainedModel,
    TrainingError,
    _embed,
    _stack,
    semantic_module,
)
from caredesk.triage.model.classifier import default_engine
from caredesk.triage.model.vectorize import (
    GRAM_BUCKETS,
    GRAM_WEIGHT,
    MAX_GRAM,
    MIN_BIGRAM_DOCS,
    MIN_GRAM,
    FloatArray,
    IntArray,
    TextWeights,
    gram_triplets,
    model_tokens,
)
from caredesk.triage.semantic import finetune
from caredesk.triage.text.tokens import SEP, tokenize
from caredesk.triage.training.fitting import choose, fit_linear, search_size, stratified_folds
from caredesk.triage.vocabulary import BINARY_TASKS, FALSE, SENTIMENT_ALIASES, SENTIMENTS, TASKS, TRUE

_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})

# Trained (brand) models use NB-LR on their text features (see fitting.fit_linear) when they have at most this many
# classes. NB-LR is one yes/no model per class, and with many classes the rare ones lose: on nine airline reasons it
# scored 0.552 against plain regression's 0.580 (with the embedding), while it gained 0.003-0.008 on the two- and
# three-class tasks. A larger taxonomy keeps one multinomial regression. The shipped model, which brand models stack
# on, keeps plain logistic regression so that its scores stay comparable across classes for the rules and the mix.
NB_MAX_CLASSES = 3


# --- features beside the text -----------------------------------------------------------------------------------


def _use_semantic(semantic: bool | None) -> bool:
    if semantic is None:
        return semantic_module() is not None
    if semantic and semantic_module() is None:
        raise TrainingError("semantic=True but caredesk.triage.semantic is not installed or not available")
    return semantic


# --- labels ---------------------------------------------------------------------------------------------------------


def check_task(task: str) -> None:
    if task not in TASKS:
        raise TrainingError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def normalize_label(value: object, task: str) -> str:
    """The class name a file's label stands for: "true"/"false" for yes/no tasks, a sentiment, or a topic key.

    Raises ValueError for an empty or unrecognised label.
    """
    check_task(task)
    if isinstance(value, bool):
        text = TRUE if value else FALSE
    elif value is None:
        text = ""
    else:
        text = str(value).strip().lower()
    if not text:
        raise ValueError("empty label")
    if task in BINARY_TASKS:
        if text in _TRUE:
            return TRUE
        if text in _FALSE:
            return FALSE
        raise ValueError(f"label {value!r} is not true/false, 1/0 or yes/no")
    if task == "sentiment":
        text = SENTIMENT_ALIASES.get(text, text)
        if text not in SENTIMENTS:
            raise ValueError(f"label {value!r} is not negative, neutral or positive")
        return text
    return text  # topic: any key; a brand taxonomy may add its own


# --- training -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Design:
    """The training matrix and the vocabulary behind its columns."""

    matrix: Any  # scipy.sparse.csr_matrix (n, V + GRAM_BUCKETS + B)
    vocab: tuple[str, ...]
    idf: FloatArray
    bigrams: IntArray
    bigram_idf: FloatArray


def _design(texts: Sequence[str]) -> _Design:
    """The sparse text matrix of vectorize.py's definition, for texts whose vocabulary it defines."""
    from scipy import sparse

    n = len(texts)
    batch = tokenize(texts)
    lower = model_tokens(batch.lower)
    words = [SEP, *sorted(set(lower) - {SEP})]
    index = {w: i for i, w in enumerate(words)}
    v1 = len(words)
    ids = np.fromiter(map(index.__getitem__, lower), dtype=np.int64, count=len(lower))
    keys = np.unique(batch.post_of * v1 + ids)
    posts, types = keys // v1, keys % v1
    word_entry = types > 0
    posts, types = posts[word_entry], types[word_entry]
    df = np.bincount(types, minlength=v1)
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    idf[0] = 0.0

    a, b = ids[:-1], ids[1:]
    ok = np.flatnonzero((a > 0) & (b > 0))
    pair = a[ok] * v1 + b[ok]
    doc_pairs = np.unique(batch.post_of[ok] * (v1 * v1) + pair)
    pair_posts = doc_pairs // (v1 * v1)
    uniq, inverse, counts = np.unique(doc_pairs % (v1 * v1), return_inverse=True, return_counts=True)
    kept = counts >= MIN_BIGRAM_DOCS
    row_of = np.cumsum(kept) - 1
    sel = kept[inverse]
    bigram_rows = row_of[inverse[sel]]
    bigram_idf = np.log((1.0 + n) / (1.0 + counts[kept])) + 1.0
    kept_pairs = uniq[kept]
    bigrams = np.column_stack([kept_pairs // v1 - 1, kept_pairs % v1 - 1]).astype(np.int64)

    g_word, g_bucket, g_weight = gram_triplets(words)
    has = np.zeros(v1)
    has[np.unique(g_word)] = 1.0
    grams = sparse.csr_matrix((g_weight, (g_word, g_bucket)), shape=(v1, GRAM_BUCKETS))
    t = sparse.csr_matrix((np.ones(len(posts)), (posts, types)), shape=(n, v1))
    x_word = t @ sparse.diags(idf)
    x_gram = t @ grams
    x_bi = sparse.csr_matrix((bigram_idf[bigram_rows], (pair_posts[sel], bigram_rows)), shape=(n, int(kept.sum())))
    sq = t @ (idf**2 + GRAM_WEIGHT**2 * has) + np.asarray(x_bi.multiply(x_bi).sum(axis=1)).ravel()
    inv = np.where(sq > 0, 1.0 / np.sqrt(np.maximum(sq, 1e-12)), 0.0)
    x = sparse.diags(inv) @ sparse.hstack([x_word[:, 1:], x_gram, x_bi], format="csr")
    return _Design(sparse.csr_matrix(x), tuple(words[1:]), idf[1:], bigrams, bigram_idf)


def _fit_model(
    texts: Sequence[str],
    labels: Sequence[str],
    task: str,
    *,
    dense: Dense,
    stack: bool,
    semantic: bool,
    seed: int = 0,
    source: str = "",
    hyper: tuple[float, str | None] | None = None,
    progress: bool = False,
    nb: bool = False,
    fine_tune: bool = False,
) -> TrainedModel:
    from scipy import sparse

    classes = tuple(sorted(set(labels)))
    k = 1 if len(classes) == 2 else len(classes)
    y = np.array([classes.index(v) for v in labels], dtype=np.int64)
    design = _design(texts)
    d = dense.matrix(len(texts))
    x = sparse.hstack([design.matrix, sparse.csr_matrix(d)], format="csr") if d.shape[1] else design.matrix
    fits = 1 + (search_size(y, len(classes)) if hyper is None else 0)
    step = _progress(fits, f"training {task}", progress, unit="fit")
    nb_columns = design.matrix.shape[1] if nb else 0
    c, cw, search = (
        choose(x, y, len(classes), seed, step, nb_columns) if hyper is None else (hyper[0], hyper[1], {})
    )
    fitted = fit_linear(x, y, len(classes), c, cw, nb_columns)
    step()
    coef, bias = fitted.coef, fitted.bias  # (columns, K), (K,)
    if coef.shape[1] != k:
        raise TrainingError(f"expected {k} weight columns, got {coef.shape[1]}")
    v, n_bi = len(design.vocab), len(design.bigram_idf)
    text = TextWeights(
        vocab=design.vocab,
        idf=design.idf,
        bigrams=design.bigrams,
        bigram_idf=design.bigram_idf,
        w_word=coef[:v].astype(np.float32),
        w_gram=coef[v : v + GRAM_BUCKETS].astype(np.float32),
        w_bigram=coef[v + GRAM_BUCKETS : v + GRAM_BUCKETS + n_bi].astype(np.float32),
    )
    w_dense = coef[v + GRAM_BUCKETS + n_bi :].astype(np.float32)
    counts = {cls: int(np.sum(y == i)) for i, cls in enumerate(classes)}
    meta: dict[str, Any] = {
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "n_examples": len(texts),
        "class_counts": counts,
        "source": source,
        "features": {
            "words": True,
            "bigrams_min_docs": MIN_BIGRAM_DOCS,
            "char_ngrams": [MIN_GRAM, MAX_GRAM],
            "gram_buckets": GRAM_BUCKETS,
            "gram_weight": GRAM_WEIGHT,
            "stack": stack,
            "semantic": semantic,
            "nb_scaling": nb,
            "fine_tuned": fine_tune,
            "vocabulary": v,
            "bigrams": n_bi,
        },
        "C": c,
        "class_weight": cw,
        "search": search,
    }
    if stack:
        # Stacked features come from the shipped model: a brand model should be retrained when that changes.
        meta["stacked_on"] = default_engine().base.models["sentiment"].meta.get("data_sha256", "")
    tuned = finetune.fine_tune(texts, y.tolist(), len(classes), seed=seed, progress=progress) if fine_tune else None
    return TrainedModel(task, classes, text, w_dense, bias, meta, tuned)


def _prepare(texts: Sequence[str], labels: Sequence[object], task: str) -> tuple[list[str], list[str]]:
    check_task(task)
    if len(texts) != len(labels):
        raise TrainingError(f"{len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise TrainingError("no examples to train on")
    norm = []
    for i, value in enumerate(labels):
        try:
            norm.append(normalize_label(value, task))
        except ValueError as exc:
            raise TrainingError(f"example {i}: {exc}") from None
    if len(set(norm)) < 2:
        raise TrainingError(f"every label is {norm[0]!r}: a model needs at least two classes")
    return [str(t) for t in texts], norm


def train_model(
    texts: Sequence[str],
    labels: Sequence[str],
    task: str,
    *,
    semantic: bool | None = None,
    progress: bool = False,
    stack: bool = True,
    source: str = "",
    fine_tune: bool = False,
) -> TrainedModel:
    """Fit one task's model. Labels are normalised (yes/1/true -> "true", ...); needs scikit-learn.

    ``stack`` adds the default classifier's scores as features (on for brand models; off for the shipped model,
    which is what they stack on). ``semantic``: None uses sentence embeddings when they are available.
    ``fine_tune`` also fine-tunes the semantic encoder (see triage.semantic.finetune; needs PyTorch to train).
    """
    texts_, labels_ = _prepare(texts, labels, task)
    _check_fine_tune(fine_tune)
    use_sem = _use_semantic(semantic)
    dense = Dense(
        stack=_stack(texts_) if stack else None,
        semantic=_embed(texts_, progress=progress) if use_sem else None,
    )
    return _fit_model(
        texts_, labels_, task, dense=dense, stack=stack, semantic=use_sem, source=source, progress=progress,
        nb=len(set(labels_)) <= NB_MAX_CLASSES, fine_tune=fine_tune,
    )


def _check_fine_tune(fine_tune: bool) -> None:
    if fine_tune:
        reason = finetune.unavailable_reason()
        if reason is not None:
            raise TrainingError(f"cannot fine-tune: {reason}")


# --- evaluation -------------------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    classes: tuple[str, ...]
    precision: dict[str, float]
    recall: dict[str, float]
    f1: dict[str, float]
    support: dict[str, int]
    macro_f1: float
    accuracy: float
    confusion: list[list[int]]  # rows: true class, columns: predicted class, in ``classes`` order

    def format(self) -> str:
        width = max(12, *(len(c) + 2 for c in self.classes))
        lines = [f"{'class':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
        for c in self.classes:
            lines.append(
                f"{c:<{width}}{self.precision[c]:>10.3f}{self.recall[c]:>10.3f}{self.f1[c]:>10.3f}{self.support[c]:>10}"
            )
        total = sum(self.support.values())
        lines.append("")
        lines.append(f"{'macro-F1':<{width}}{self.macro_f1:>30.3f}{total:>10}")
        lines.append(f"{'accuracy':<{width}}{self.accuracy:>30.3f}{total:>10}")
        lines.append("")
        lines.append("confusion matrix (rows: true, columns: predicted)")
        cell = max(8, *(len(c) + 2 for c in self.classes), *(len(str(v)) + 2 for r in self.confusion for v in r))
        lines.append(" " * width + "".join(f"{c:>{cell}}" for c in self.classes))
        for c, row in zip(self.classes, self.confusion, strict=True):
            lines.append(f"{c:<{width}}" + "".join(f"{v:>{cell}}" for v in row))
        return "\n".join(lines)


def evaluate(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str] | None = None) -> Evaluation:
    """Per-class precision, recall and F1 (0 where undefined), macro-F1 over ``classes``, accuracy, confusion."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    names = tuple(classes) if classes is not None else tuple(sorted(set(y_true) | set(y_pred)))
    pos = {c: i for i, c in enumerate(names)}
    k = len(names)
    confusion = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y_true, y_pred, strict=True):
        if t in pos and p in pos:
            confusion[pos[t], pos[p]] += 1
    precision, recall, f1, support = {}, {}, {}, {}
    for c, i in pos.items():
        tp = int(confusion[i, i])
        predicted = int(confusion[:, i].sum())
        actual = int(confusion[i, :].sum())
        precision[c] = tp / predicted if predicted else 0.0
        recall[c] = tp / actual if actual else 0.0
        both = precision[c] + recall[c]
        f1[c] = 2 * precision[c] * recall[c] / both if both else 0.0
        support[c] = actual
    n = len(y_true)
    correct = sum(1 for t, p in zip(y_true, y_pred, strict=True) if t == p)
    return Evaluation(
        classes=names,
        precision=precision,
        recall=recall,
        f1=f1,
        support=support,
        macro_f1=float(np.mean(list(f1.values()))) if f1 else 0.0,
        accuracy=correct / n if n else 0.0,
        confusion=confusion.tolist(),
    )


def _progress(total: int, desc: str, enabled: bool, unit: str = "fold") -> Callable[[], None]:
    """A step function that advances a tqdm bar on stderr (closed at the last step), or does nothing."""
    if not enabled:
        return lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit)

    def step() -> None:
        bar.update(1)
        if bar.n >= total:
            bar.close()

    return step


def cross_validate(
    texts: Sequence[str],
    labels: Sequence[str],
    task: str,
    *,
    folds: int = 5,
    seed: int = 0,
    semantic: bool | None = None,
    progress: bool = False,
    fine_tune: bool = False,
) -> Evaluation:
    """Stratified k-fold cross-validation of :func:`train_model`; metrics over the pooled out-of-fold predictions.

    Deterministic for a given ``seed``. Each fold's model picks its own hyper-parameters on its training part only.
    """
    texts_, labels_ = _prepare(texts, labels, task)
    _check_fine_tune(fine_tune)
    counts = {c: labels_.count(c) for c in set(labels_)}
    folds = max(2, min(folds, max(counts.values())))
    use_sem = _use_semantic(semantic)
    stack = _stack(texts_)
    emb = _embed(texts_, progress=progress) if use_sem else None
    fold_of = stratified_folds(labels_, folds, seed)
    pred: list[str] = [""] * len(texts_)
    step = _progress(folds, f"cross-validating {task}", progress)
    for f in range(folds):
        train_idx = np.flatnonzero(fold_of != f)
        test_idx = np.flatnonzero(fold_of == f)
        train_labels = [labels_[i] for i in train_idx.tolist()]
        if len(set(train_labels)) < 2 or not len(test_idx):
            step()
            continue
        model = _fit_model(
            [texts_[i] for i in train_idx.tolist()],
            train_labels,
            task,
            dense=Dense(stack[train_idx], None if emb is None else emb[train_idx]),
            stack=True,
            semantic=use_sem,
            seed=seed,
            nb=len(set(labels_)) <= NB_MAX_CLASSES,
            fine_tune=fine_tune,
        )
        test_dense = Dense(stack[test_idx], None if emb is None else emb[test_idx])
        for i, p in zip(test_idx.tolist(), model.predict([texts_[i] for i in test_idx.tolist()], dense=test_dense),
                        strict=True):
            pred[i] = p
        step()
    classes = sorted(set(labels_))
    if task in BINARY_TASKS:
        classes = [FALSE, TRUE]
    elif task == "sentiment":
        classes = [c for c in SENTIMENTS if c in counts] or classes
    return evaluate(labels_, pred, classes)


def binary_value(label: str) -> bool:
    return label == TRUE


__all__ = [
    "TASKS",
    "Evaluation",
    "Mix",
    "ModelBundle",
    "TrainedModel",
    "TrainingError",
    "cross_validate",
    "evaluate",
    "normalize_label",
    "train_model",
]
