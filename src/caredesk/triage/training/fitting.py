"""Fitting the linear models of train.py: (NB-)logistic regression, stratified folds and the small search for C.

Works on ready feature matrices (scipy sparse or numpy) and integer labels; knows nothing of texts or tasks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Hyper-parameters tried by the internal cross-validation of train_model (inverse L2 strength x class weighting).
# Only balanced class weights: the search scores macro-F1, where unweighted fits lose the small classes, and NB-LR
# fits one model per class, so every setting tried costs K fits.
C_GRID = (0.5, 2.0, 8.0)
CLASS_WEIGHTS: tuple[str | None, ...] = ("balanced",)
DEFAULT_C = 2.0
INNER_FOLDS = 3
INNER_CV_MAX = 3000  # above this many examples the search uses one split instead of all folds
MIN_PER_CLASS_FOR_SEARCH = 10  # fewer examples of some class and the search is noise: use the defaults
NB_ALPHA = 1.0
SEARCH_MARGIN = 0.005  # another setting must beat the default by this much macro-F1 to be chosen


def stratified_folds(labels: Sequence[str], folds: int, seed: int) -> IntArray:
    """Stratified fold number per example: each class is shuffled and dealt round-robin."""
    rng = np.random.default_rng(seed)
    y = np.asarray(labels)
    out = np.zeros(len(y), dtype=np.int64)
    offset = 0
    for cls in sorted(set(labels)):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(len(idx))]
        out[idx] = (np.arange(len(idx)) + offset) % folds
        offset += len(idx)
    return out


def fit(x: Any, y: IntArray, c: float, class_weight: str | None) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    # saga: several times faster than lbfgs on these wide sparse matrices, and deterministic for a fixed seed.
    clf = LogisticRegression(C=c, class_weight=class_weight, solver="saga", max_iter=200, tol=1e-3, random_state=0)
    with warnings.catch_warnings():
        # Stopping at max_iter leaves the weights near the optimum: fine for ranking posts, not worth a warning.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return clf


@dataclass(frozen=True, slots=True)
class Linear:
    """Fitted weights: (columns, K) with K = 1 for a yes/no task, and the intercepts."""

    coef: FloatArray
    bias: FloatArray

    def predict(self, x: Any) -> IntArray:
        z = np.asarray(x @ self.coef) + self.bias
        out: IntArray = (z[:, 0] > 0).astype(np.int64) if z.shape[1] == 1 else z.argmax(axis=1).astype(np.int64)
        return out


def nb_ratio(presence: Any, positive: npt.NDArray[np.bool_]) -> FloatArray:
    """Log-count ratio of each text feature between the posts of a class and the rest (add-one smoothed)."""
    p = NB_ALPHA + np.asarray(presence[positive].sum(axis=0)).ravel()
    q = NB_ALPHA + np.asarray(presence[~positive].sum(axis=0)).ravel()
    out: FloatArray = np.log((p / p.sum()) / (q / q.sum()))
    return out


def fit_linear(x: Any, y: IntArray, k: int, c: float, class_weight: str | None, nb_columns: int) -> Linear:
    """Logistic regression; with ``nb_columns`` > 0, NB-LR on those leading (text) columns.

    NB-LR (Wang & Manning 2012, "Baselines and Bigrams"): each text feature is scaled by how much more often it
    occurs in one class than in the rest before the regression, one yes/no model per class, which is reliably
    better than plain logistic regression on short opinionated texts. The scaling folds into the weights, so the
    saved model is an ordinary linear model and prediction does not change.
    """
    from scipy import sparse

    if not nb_columns:
        clf = fit(x, y, c, class_weight)
        return Linear(np.asarray(clf.coef_, dtype=np.float64).T, np.asarray(clf.intercept_, dtype=np.float64))
    text, dense = x[:, :nb_columns], x[:, nb_columns:]
    presence = text.copy()
    presence.data[:] = 1.0
    coefs, biases = [], []
    for cls in [1] if k == 2 else range(k):
        positive = y == cls
        r = nb_ratio(presence, positive)
        scaled = sparse.hstack([text @ sparse.diags(r), dense], format="csr")
        clf = fit(scaled, positive.astype(np.int64), c, class_weight)
        w = np.asarray(clf.coef_, dtype=np.float64).ravel()
        w[:nb_columns] *= r
        coefs.append(w)
        biases.append(float(clf.intercept_[0]))
    return Linear(np.column_stack(coefs), np.array(biases))


def macro_f1(y: IntArray, pred: IntArray, k: int) -> float:
    scores = []
    for c in range(k):
        tp = float(np.sum((pred == c) & (y == c)))
        fp = float(np.sum((pred == c) & (y != c)))
        fn = float(np.sum((pred != c) & (y == c)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def search_size(y: IntArray, k: int) -> int:
    """How many settings :func:`_choose` will try (0: none, the set is too small)."""
    if np.bincount(y, minlength=k).min() < MIN_PER_CLASS_FOR_SEARCH:
        return 0
    return len(C_GRID) * len(CLASS_WEIGHTS)


def choose(
    x: Any, y: IntArray, k: int, seed: int, step: Callable[[], None] = lambda: None, nb_columns: int = 0
) -> tuple[float, str | None, dict[str, float]]:
    """C and class weighting by a small stratified cross-validation on the training set (macro-F1)."""
    if not search_size(y, k):
        return DEFAULT_C, "balanced", {}
    fold = stratified_folds([str(v) for v in y.tolist()], INNER_FOLDS, seed)
    # Large sets: one split (a third held out) is already a stable estimate, and three times cheaper.
    rounds = INNER_FOLDS if len(y) <= INNER_CV_MAX else 1
    results: dict[str, float] = {}
    best = (-1.0, DEFAULT_C, "balanced")
    # The default first, so that ties (common on small, easy sets) keep it.
    grid: list[tuple[float, str | None]] = [(DEFAULT_C, "balanced")]
    grid += [(c, cw) for cw in CLASS_WEIGHTS for c in C_GRID if (c, cw) != (DEFAULT_C, "balanced")]
    for c, cw in grid:
        scored = np.zeros(len(y), dtype=bool)
        pred = np.zeros(len(y), dtype=np.int64)
        for f in range(rounds):
            train, test = fold != f, fold == f
            pred[test] = fit_linear(x[train], y[train], k, c, cw, nb_columns).predict(x[test])
            scored |= test
        score = macro_f1(y[scored], pred[scored], k)
        step()
        results[f"C={c:g},{cw or 'none'}"] = round(score, 4)
        if score > best[0] + (SEARCH_MARGIN if best[0] >= 0 else 0.0):
            best = (score, c, cw or "")
    return best[1], (best[2] or None), results
