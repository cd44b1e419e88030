"""Train triage v0 from ``seed_examples.jsonl`` and write ``model_v0.npz``.

    python -m caredesk.triage.build_v0            # rebuild the shipped weights
    python -m caredesk.triage.build_v0 --check    # rebuild in memory, fail if it differs from the shipped file
    python -m caredesk.triage.build_v0 --evaluate # 5-fold cross-validation of model alone and rules + model

Needs scikit-learn (training only; classification needs numpy alone). Deterministic: lbfgs on a fixed matrix.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from caredesk.triage.model import WEIGHTS_FILE, Head, LinearModel
from caredesk.triage.phrases import PhraseIndex
from caredesk.triage.text import SEP, tokenize

SEED_FILE = "seed_examples.jsonl"
SENTIMENTS = ("negative", "neutral", "positive")
TOPICS = ("outage", "billing", "technical", "account", "cancellation", "delivery", "praise", "question", "other")
MIN_DOCS = 2  # a word seen in one example only teaches the model that example
REGULARISATION = 1.0  # sklearn's C; small data, so keep weights modest


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    complaint: bool
    needs_reply: bool
    sentiment: str
    topic: str


def package_path(name: str) -> Path:
    return Path(str(resources.files("caredesk.triage") / name))


def load_examples(path: Path | None = None) -> list[Example]:
    rows: list[Example] = []
    with (path or package_path(SEED_FILE)).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                raw = json.loads(line)
                rows.append(Example(raw["text"], raw["complaint"], raw["needs_reply"], raw["sentiment"], raw["topic"]))
    return rows


def token_lists(texts: Sequence[str]) -> list[list[str]]:
    batch = tokenize(texts)
    out: list[list[str]] = []
    for tok in batch.lower:
        if tok == SEP:
            out.append([])
        else:
            out[-1].append(tok)
    return out


def vocabulary(docs: list[list[str]]) -> tuple[str, ...]:
    df: Counter[str] = Counter()
    for toks in docs:
        grams = set(toks) | {f"{a} {b}" for a, b in zip(toks, toks[1:], strict=False)}
        df.update(grams)
    return tuple(sorted(g for g, c in df.items() if c >= MIN_DOCS))


def count_matrix(texts: Sequence[str], features: tuple[str, ...]) -> npt.NDArray[np.float64]:
    """Counts of each feature, found exactly as at classification time (PhraseIndex over the same tokens)."""
    index = PhraseIndex(features)
    batch = tokenize(texts)
    uni, bi = index.lookup(batch.lower)
    column = np.full(index.n_rows, -1, dtype=np.int64)
    column[[index.row(f) for f in features]] = np.arange(len(features))
    x = np.zeros((len(texts), len(features)))
    for rows in (uni, bi):
        col = column[rows]
        ok = col >= 0
        np.add.at(x, (batch.post_of[ok], col[ok]), 1.0)
    return x


def _fit(x: npt.NDArray[np.float64], y: Sequence[str], classes: Sequence[str]) -> Head:
    from sklearn.linear_model import LogisticRegression

    labels = np.array([classes.index(v) for v in y])
    clf = LogisticRegression(C=REGULARISATION, max_iter=2000)
    clf.fit(x, labels)
    if len(classes) == 2:
        # Column = log-odds of classes[1] ("true").
        return Head(classes=("true",), coef=clf.coef_.T.copy(), intercept=clf.intercept_.copy())
    # sklearn omits classes absent from the data; give them a very negative intercept rather than fail.
    coef = np.zeros((x.shape[1], len(classes)))
    intercept = np.full(len(classes), -20.0)
    for j, cls_id in enumerate(clf.classes_):
        coef[:, cls_id] = clf.coef_[j]
        intercept[cls_id] = clf.intercept_[j]
    return Head(classes=tuple(classes), coef=coef, intercept=intercept)


def train(examples: Sequence[Example], meta: dict[str, Any] | None = None) -> LinearModel:
    texts = [e.text for e in examples]
    features = vocabulary(token_lists(texts))
    x = count_matrix(texts, features)
    heads = {
        "complaint": _fit(x, [str(e.complaint) for e in examples], ("False", "True")),
        "needs_reply": _fit(x, [str(e.needs_reply) for e in examples], ("False", "True")),
        "sentiment": _fit(x, [e.sentiment for e in examples], SENTIMENTS),
        "topic": _fit(x, [e.topic for e in examples], TOPICS),
    }
    return LinearModel(features=features, heads=heads, meta=meta or {})


def seed_digest(path: Path | None = None) -> str:
    return hashlib.sha256((path or package_path(SEED_FILE)).read_bytes()).hexdigest()


def build() -> LinearModel:
    import sklearn

    examples = load_examples()
    meta = {
        "name": "caredesk-triage-v0",
        "trained_on": SEED_FILE,
        "seed_sha256": seed_digest(),
        "examples": len(examples),
        "min_docs": MIN_DOCS,
        "C": REGULARISATION,
        "sklearn": sklearn.__version__,
    }
    return train(examples, meta)


def same_model(a: LinearModel, b: LinearModel, atol: float = 1e-2) -> bool:
    """Same features and seed, weights equal up to solver noise across platforms (weights are ~0.1-3)."""
    if a.features != b.features or a.meta.get("seed_sha256") != b.meta.get("seed_sha256"):
        return False
    for name, head in a.heads.items():
        other = b.heads[name]
        if head.classes != other.classes:
            return False
        if not (
            np.allclose(head.coef, other.coef, atol=atol) and np.allclose(head.intercept, other.intercept, atol=atol)
        ):
            return False
    return True


def evaluate(folds: int = 5) -> dict[str, dict[str, float]]:
    """Cross-validated accuracy on the seed set: the model alone, and the full classifier (rules + model)."""
    from caredesk.triage.classifier import Engine
    from caredesk.triage.types import PostSignals

    examples = load_examples()
    rng = np.random.default_rng(0)
    fold_of = rng.permutation(len(examples)) % folds
    scores: dict[str, dict[str, list[float]]] = {"model": {}, "combined": {}}
    for f in range(folds):
        train_set = [e for e, k in zip(examples, fold_of, strict=True) if k != f]
        test_set = [e for e, k in zip(examples, fold_of, strict=True) if k == f]
        model = train(train_set)
        x = count_matrix([e.text for e in test_set], model.features)
        for name, head in model.heads.items():
            logits = x @ head.coef + head.intercept
            truth = [getattr(e, name) for e in test_set]
            if head.binary:
                pred: list[Any] = (logits[:, 0] > 0).tolist()
            else:
                pred = [head.classes[i] for i in logits.argmax(axis=1)]
            acc = float(np.mean([p == t for p, t in zip(pred, truth, strict=True)]))
            scores["model"].setdefault(name, []).append(acc)
        results = Engine(model).classify([PostSignals(text=e.text) for e in test_set])
        for name in ("complaint", "needs_reply", "sentiment", "topic"):
            truth = [getattr(e, name) for e in test_set]
            pred = [getattr(r, name).value for r in results]
            acc = float(np.mean([p == t for p, t in zip(pred, truth, strict=True)]))
            scores["combined"].setdefault(name, []).append(acc)
    return {kind: {k: round(float(np.mean(v)), 3) for k, v in per.items()} for kind, per in scores.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the shipped weights are stale")
    parser.add_argument("--evaluate", action="store_true", help="print cross-validated accuracy")
    parser.add_argument("--out", type=Path, help=f"where to write (default: the package's {WEIGHTS_FILE})")
    args = parser.parse_args(argv)
    if args.evaluate:
        print(json.dumps(evaluate(), indent=2))
        return 0
    model = build()
    if args.check:
        ok = same_model(model, LinearModel.load())
        print("model_v0.npz is up to date" if ok else "model_v0.npz is stale: run python -m caredesk.triage.build_v0")
        return 0 if ok else 1
    out = args.out or package_path(WEIGHTS_FILE)
    model.save(out)
    print(f"wrote {out}: {len(model.features)} features from {model.meta['examples']} examples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
