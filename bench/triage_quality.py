"""Triage quality on public evaluation sets, side by side with VADER and TF-IDF + logistic regression, plus speed.

    python bench/triage_quality.py [--quick] [--data DIR] [--json OUT] [--no-semantic] [--no-speed] [--jobs N]
                                   [--fine-tune] [--methods M1,M2] [--speed-only]

One run measures, on the same data and the same splits:

1. airline sentiment (3 classes): caredesk's shipped model zero-shot, VADER zero-shot, TF-IDF + LR under stratified
   k-fold cross-validation, and ``caredesk.triage.training.train.cross_validate(..., "sentiment")`` under the same
   folds;
2. airline negative reason as topic: shipped zero-shot on reasons mapped onto DEFAULT_TOPICS (see TOPIC_MAP), and
   TF-IDF + LR and caredesk training under CV on the raw reasons (a brand taxonomy);
3. needs-reply on the twcs support threads (labels derived from brand replies, see load_twcs): shipped zero-shot,
   a VADER heuristic, TF-IDF + LR CV and caredesk training CV;
4. speed on one core: bench/triage_speed.py under ``taskset -c 0``, then VADER, TF-IDF + LR and (if installed) the
   semantic embedding path on the same posts, pinned to CPU 0.

The data sets are read from ``<repo>/../shared/data`` (or ``--data`` / ``$CAREDESK_DATA``) at run time and never
copied into the project; the airline set is CC BY-NC-SA, fine for evaluation, never for training shipped models.
The protocol behind every figure is written down in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _evaldata import (  # noqa: I001 - a sibling script module, like _db in the other benchmarks
    REPO,
    SENTIMENTS,
    TOPIC_MAP,
    VADER_THRESHOLD,
    Inbound,
    Tweet,
    data_dir,
    load_airline,
    load_twcs,
    stratified_sample,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from caredesk.triage import classify
from caredesk.triage.types import PostSignals

# --- scoring ------------------------------------------------------------------------------------------------------


@dataclass
class Result:
    task: str
    method: str
    training: str  # "none (zero-shot)", "5-fold CV", ...
    classes: list[str]
    macro_f1: float | None = None
    accuracy: float | None = None
    f1: dict[str, float] = field(default_factory=dict)
    support: dict[str, int] = field(default_factory=dict)
    confusion: list[list[int]] = field(default_factory=list)
    seconds: float | None = None
    n: int = 0
    note: str = ""


def score(
    task: str, method: str, training: str, y_true: Sequence[Any], y_pred: Sequence[Any], classes: Sequence[Any]
) -> Result:
    """Macro-F1 over ``classes`` (the gold label set); a prediction outside it only costs recall."""
    _p, _r, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=list(classes), zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=list(classes))
    return Result(
        task=task,
        method=method,
        training=training,
        classes=[str(c) for c in classes],
        macro_f1=float(np.mean(f1)),
        accuracy=float(np.mean([a == b for a, b in zip(y_true, y_pred, strict=True)])),
        f1={str(c): float(v) for c, v in zip(classes, f1, strict=True)},
        support={str(c): int(v) for c, v in zip(classes, support, strict=True)},
        confusion=cm.tolist(),
        n=len(y_true),
    )


def from_evaluation(task: str, method: str, training: str, ev: Any, seconds: float) -> Result:
    """A Result from caredesk.triage.training.train's Evaluation."""
    classes = [str(c) for c in ev.classes]
    support = ev.support if isinstance(ev.support, dict) else dict(zip(ev.classes, ev.support, strict=True))
    return Result(
        task=task,
        method=method,
        training=training,
        classes=classes,
        macro_f1=float(ev.macro_f1),
        accuracy=float(ev.accuracy),
        f1={str(k): float(v) for k, v in ev.f1.items()},
        support={str(k): int(v) for k, v in support.items()},
        confusion=[[int(x) for x in row] for row in np.asarray(ev.confusion).tolist()],
        seconds=seconds,
        n=int(sum(support.values())),
    )


def skipped(task: str, method: str, training: str, why: str) -> Result:
    return Result(task=task, method=method, training=training, classes=[], note=why)


# --- methods ------------------------------------------------------------------------------------------------------


def fold_ids(labels: Sequence[Any], task: str, folds: int, seed: int) -> np.ndarray:
    """Fold number per example: the very assignment ``training.cross_validate`` makes for these labels and seed, so
    every CV figure here is measured on the same splits; StratifiedKFold (shuffled, same seed) without it."""
    module = training_module()
    if module is not None:
        from caredesk.triage.training.fitting import stratified_folds

        norm = [module.normalize_label(y, task) for y in labels]
        return np.asarray(stratified_folds(norm, folds, seed))
    out = np.zeros(len(labels), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for f, (_train, test) in enumerate(splitter.split(np.zeros(len(labels)), np.asarray(labels))):
        out[test] = f
    return out


def tfidf_lr() -> Pipeline:
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        # balanced class weights: the usual choice when the figure of merit is macro-F1 over skewed classes;
        # C stays at scikit-learn's default (1.0), untuned
        LogisticRegression(class_weight="balanced", max_iter=2000),
    )


def tfidf_cv(texts: Sequence[str], labels: Sequence[Any], fold_of: np.ndarray) -> tuple[list[Any], float]:
    """Out-of-fold predictions of TF-IDF (word 1-2 grams, sublinear tf) + LogisticRegression, pooled over folds."""
    start = time.perf_counter()
    pred: list[Any] = [None] * len(texts)
    x = np.asarray(texts, dtype=object)
    y = np.asarray(labels)
    for f in np.unique(fold_of):
        train, test = np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)
        model = tfidf_lr().fit(x[train], y[train])
        for i, p in zip(test, model.predict(x[test]), strict=True):
            pred[i] = p
    return pred, time.perf_counter() - start


class Vader:
    """VADER compound scores, computed once per text and cached for the run."""

    def __init__(self) -> None:
        self.analyzer = SentimentIntensityAnalyzer()
        self.cache: dict[str, float] = {}

    def compound(self, text: str) -> float:
        value = self.cache.get(text)
        if value is None:
            value = self.cache[text] = float(self.analyzer.polarity_scores(text)["compound"])
        return value

    def sentiment(self, text: str) -> str:
        c = self.compound(text)
        return "positive" if c >= VADER_THRESHOLD else "negative" if c <= -VADER_THRESHOLD else "neutral"

    def needs_reply(self, text: str) -> bool:
        """Heuristic baseline: a negative post or one with a question mark needs a reply."""
        return self.compound(text) <= -VADER_THRESHOLD or "?" in text


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def shipped(posts: Sequence[PostSignals], batch: int = 5000) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(posts), batch):
        out.extend(classify(posts[i : i + batch]))
    return out


def training_module() -> Any | None:
    try:
        from caredesk.triage.training import train as training
    except ImportError:
        return None
    return training if hasattr(training, "cross_validate") else None


def semantic_module() -> Any | None:
    """The sentence-embedding module when the semantic extra is installed and usable (the check training uses)."""
    if training_module() is None:
        return None
    from caredesk.triage.model.bundle import semantic_module as find

    return find()


class EmbeddingCache:
    """Stands in for ``semantic.embed`` during the run: each distinct text is embedded once and kept in memory, so
    the sentiment, topic and needs-reply cross-validations share one embedding pass. Nothing is written to disk."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.original = module.embed
        self.vectors: dict[str, np.ndarray] = {}
        self.seconds = 0.0

    def __call__(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            start = time.perf_counter()
            vectors = self.original(missing, batch_size=batch_size, progress=progress)
            self.seconds += time.perf_counter() - start
            self.vectors.update(zip(missing, vectors, strict=True))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self.vectors[t] for t in texts])

    def __enter__(self) -> EmbeddingCache:
        self.module.embed = self
        return self

    def __exit__(self, *exc: object) -> None:
        self.module.embed = self.original


def caredesk_cv(
    task_name: str,
    texts: Sequence[str],
    labels: Sequence[Any],
    task: str,
    folds: int,
    seed: int,
    *,
    semantic: bool,
    fine_tune: bool = False,
    classes: Sequence[str] | None = None,
) -> Result:
    """``training.cross_validate`` on these texts; ``classes`` orders the per-class figures as in the other rows."""
    method = FINE_TUNE if fine_tune else "caredesk train" + (" + semantic" if semantic else "")
    training_label = f"{folds}-fold CV"
    module = training_module()
    if module is None:
        return skipped(task_name, method, training_label, "caredesk.triage.training.train.cross_validate not available")
    try:
        ev, seconds = timed(
            lambda: module.cross_validate(
                list(texts), list(labels), task, folds=folds, seed=seed, semantic=semantic, fine_tune=fine_tune
            )
        )
    except Exception as exc:  # noqa: BLE001 - a failing contender is reported in the table, the run goes on
        return skipped(task_name, method, training_label, f"failed: {type(exc).__name__}: {exc}")
    result = from_evaluation(task_name, method, training_label, ev, seconds)
    # training normalises labels ("Late Flight" -> "late flight", True -> "true"); show the names used elsewhere
    names = {module.normalize_label(y, task): str(y) for y in labels}
    shown = [names.get(c, c) for c in result.classes]
    order = [c for c in dict.fromkeys(str(y) for y in classes or ()) if c in shown] or shown
    position = [shown.index(c) for c in order]
    result.classes = order
    result.f1 = {names.get(k, k): v for k, v in result.f1.items()}
    result.f1 = {c: result.f1[c] for c in order}
    result.support = {c: {names.get(k, k): v for k, v in result.support.items()}[c] for c in order}
    result.confusion = [[result.confusion[i][j] for j in position] for i in position]
    return result


# --- the three quality tasks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    folds: int
    seed: int
    semantic: bool  # also run the caredesk training with sentence embeddings
    fine_tune: bool = False  # also fine-tune the encoder (sentiment only: it takes half an hour on two cores)
    methods: tuple[str, ...] = ()  # run only these CV methods (all when empty)


@dataclass(frozen=True)
class CVJob:
    """One cross-validated contender on one task; run in a worker process when --jobs > 1."""

    task_name: str
    method: str  # TF-IDF + LR | caredesk train | caredesk train + semantic | ... + fine-tune
    task: str  # the training task name: sentiment, topic, needs_reply
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    classes: tuple[str, ...]
    folds: int
    seed: int

    @property
    def cost(self) -> float:
        """Rough relative run time, to start the longest jobs first."""
        per_text = {"TF-IDF + LR": 1.0, "caredesk train": 3.0, "caredesk train + semantic": 8.0,
                    FINE_TUNE: 60.0}[self.method]
        return per_text * len(self.texts) * (1.0 + 0.3 * len(self.classes))

    def run(self) -> Result:
        if self.method == "TF-IDF + LR":
            pred, seconds = tfidf_cv(self.texts, self.labels, fold_ids(self.labels, self.task, self.folds, self.seed))
            result = score(self.task_name, self.method, f"{self.folds}-fold CV", self.labels, pred, self.classes)
            result.seconds = seconds
            return result
        return caredesk_cv(
            self.task_name,
            self.texts,
            self.labels,
            self.task,
            self.folds,
            self.seed,
            semantic="semantic" in self.method,
            fine_tune=self.method == FINE_TUNE,
            classes=self.classes,
        )


Row = Result | CVJob


FINE_TUNE = "caredesk train + semantic + fine-tune"


def cv_jobs(
    task_name: str, task: str, texts: Sequence[str], labels: Sequence[str], classes: Sequence[str], setup: Setup
) -> list[Row]:
    methods = ["TF-IDF + LR", "caredesk train"] + (["caredesk train + semantic"] if setup.semantic else [])
    if setup.fine_tune and task == "sentiment":
        methods.append(FINE_TUNE)
    if setup.methods:
        methods = [m for m in methods if m in setup.methods]
    return [
        CVJob(task_name, m, task, tuple(texts), tuple(labels), tuple(classes), setup.folds, setup.seed) for m in methods
    ]


def _limit_threads() -> None:
    """Pool worker start-up: one BLAS/OpenMP thread per worker, so that N workers use N cores."""
    from threadpoolctl import threadpool_limits

    globals()["_thread_limit"] = threadpool_limits(limits=1)


def run_rows(rows: Sequence[Row], jobs: int) -> list[Result]:
    """Results in the order of ``rows``; CV jobs run ``jobs`` at a time (forked workers, so they share the
    in-memory embedding cache), longest first, each timed on its own."""
    pending = [(i, r) for i, r in enumerate(rows) if isinstance(r, CVJob)]
    done: dict[int, Result] = {}
    if jobs <= 1 or len(pending) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for i, job in pending:
            done[i] = job.run()
    else:
        pending.sort(key=lambda item: -item[1].cost)
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_limit_threads) as pool:
            futures = {i: pool.submit(job.run) for i, job in pending}
            for i, future in futures.items():
                done[i] = future.result()
    return [done[i] if isinstance(r, CVJob) else r for i, r in enumerate(rows)]


def sentiment_rows(tweets: Sequence[Tweet], vader: Vader, setup: Setup) -> list[Row]:
    task = "airline sentiment (3-class)"
    texts = [t.text for t in tweets]
    gold = [t.sentiment for t in tweets]
    rows: list[Row] = []

    out, seconds = timed(lambda: shipped([PostSignals(text=t) for t in texts]))
    r = score(task, "caredesk shipped", "none (zero-shot)", gold, [x.sentiment.value for x in out], SENTIMENTS)
    r.seconds = seconds
    rows.append(r)

    pred, seconds = timed(lambda: [vader.sentiment(t) for t in texts])
    r = score(task, "VADER", "none (zero-shot)", gold, pred, SENTIMENTS)
    r.seconds = seconds
    rows.append(r)
    return rows + cv_jobs(task, "sentiment", texts, gold, SENTIMENTS, setup)


def topic_rows(tweets: Sequence[Tweet], setup: Setup) -> list[Row]:
    picked = [t for t in tweets if t.sentiment == "negative" and t.reason in TOPIC_MAP]
    texts = [t.text for t in picked]
    reasons = [t.reason for t in picked]
    mapped = [TOPIC_MAP[r] for r in reasons]
    rows: list[Row] = []

    task = "airline reason → default topics"
    out, seconds = timed(lambda: shipped([PostSignals(text=t) for t in texts]))
    predicted = [x.topic.value for x in out]
    r = score(task, "caredesk shipped", "none (zero-shot)", mapped, predicted, sorted(set(mapped)))
    r.seconds = seconds
    r.note = "predicted: " + ", ".join(f"{k} {v}" for k, v in Counter(predicted).most_common())
    rows.append(r)
    rows.append(skipped(task, "VADER", "n/a", "VADER has no topic output"))

    task = "airline reason (9 raw reasons)"
    rows += cv_jobs(task, "topic", texts, reasons, sorted(set(reasons)), setup)
    rows.append(skipped(task, "VADER", "n/a", "VADER has no topic output"))
    return rows


def needs_reply_rows(posts: Sequence[Inbound], vader: Vader, setup: Setup) -> list[Row]:
    task = "twcs needs-reply"
    texts = [p.text for p in posts]
    gold = ["true" if p.needs_reply else "false" for p in posts]
    classes = ["true", "false"]
    rows: list[Row] = []

    def yes_no(out: Sequence[Any]) -> list[str]:
        return ["true" if x.needs_reply.value else "false" for x in out]

    # What the desk knows at ingest: the text, whether the post replies to another, and the brand's handle.
    signals = [
        PostSignals(text=p.text, is_reply=p.is_reply, brand_handles=(p.brand,) if p.brand else ()) for p in posts
    ]
    out, seconds = timed(lambda: shipped(signals))
    r = score(task, "caredesk shipped", "none (zero-shot)", gold, yes_no(out), classes)
    r.seconds = seconds
    r.note = "with is_reply and brand handle"
    rows.append(r)

    out, seconds = timed(lambda: shipped([PostSignals(text=t) for t in texts]))
    r = score(task, "caredesk shipped (text only)", "none (zero-shot)", gold, yes_no(out), classes)
    r.seconds = seconds
    rows.append(r)

    pred, seconds = timed(lambda: ["true" if vader.needs_reply(t) else "false" for t in texts])
    r = score(task, "VADER heuristic", "none (zero-shot)", gold, pred, classes)
    r.seconds = seconds
    r.note = "negative (compound ≤ -0.05) or contains '?'"
    rows.append(r)
    return rows + cv_jobs(task, "needs_reply", texts, gold, classes, setup)


# --- speed --------------------------------------------------------------------------------------------------------


def _speed_module() -> Any:
    spec = importlib.util.spec_from_file_location("triage_speed", REPO / "bench" / "triage_speed.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pinned(args: list[str]) -> list[str]:
    return ["taskset", "-c", "0", *args] if shutil.which("taskset") else args


def _shown(cmd: Sequence[str]) -> str:
    return " ".join("python" if c == sys.executable else c.replace(str(REPO) + os.sep, "") for c in cmd)


def run_triage_speed(posts: int, singles: int, *extra: str) -> dict[str, Any]:
    """bench/triage_speed.py in a subprocess on CPU 0; its ``name: value`` lines as a dict."""
    cmd = _pinned(
        [sys.executable, str(REPO / "bench" / "triage_speed.py"), "--posts", str(posts), "--singles", str(singles)]
    )
    cmd += extra
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    figures: dict[str, Any] = {"command": _shown(cmd), "returncode": proc.returncode}
    for line in proc.stdout.splitlines():
        m = re.match(r"^\s*([A-Za-z][\w .()/-]*?)\s*:\s*([-\d,.]+)\b", line)
        if m:
            try:
                figures[m.group(1).strip()] = float(m.group(2).replace(",", ""))
            except ValueError:
                pass
    figures["output"] = proc.stdout.strip()
    if proc.returncode:
        figures["stderr"] = proc.stderr.strip()[-2000:]
    return figures


def run_baseline_speed(root: Path, n_posts: int, singles: int, semantic: bool) -> dict[str, Any]:
    """The speed worker (this script with --speed-worker) in a subprocess on CPU 0; its JSON figures."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--speed-worker", "--data", str(root)]
    cmd += ["--speed-posts", str(n_posts), "--speed-singles", str(singles)]
    cmd = _pinned(cmd + ([] if semantic else ["--no-semantic"]))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    if proc.returncode:
        return {"command": _shown(cmd), "returncode": proc.returncode, "stderr": proc.stderr.strip()[-2000:]}
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["command"] = _shown(cmd)
    return figures


def _latency(fn: Callable[[str], Any], texts: Sequence[str]) -> dict[str, float]:
    lat = []
    for t in texts:
        t0 = time.perf_counter()
        fn(t)
        lat.append(time.perf_counter() - t0)
    lat.sort()
    return {
        "single_p50_ms": 1000 * statistics.median(lat),
        "single_p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))],
        "singles": len(lat),
    }


def _throughput(fn: Callable[[Sequence[str]], Any], texts: Sequence[str], batch: int, rounds: int = 3) -> float:
    """Best of ``rounds`` (other load on a shared machine only ever slows a run down)."""
    fn(texts[:batch])  # warm
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(0, len(texts), batch):
            fn(texts[i : i + batch])
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def speed_worker(root: Path, n_posts: int, singles: int, semantic: bool) -> dict[str, Any]:
    """VADER, TF-IDF + LR (fitted on the airline sentiment set) and the semantic embedder on the posts that
    bench/triage_speed.py times (the seed examples with PII/emoji suffixes, repeated). Run it pinned to one core."""
    texts = [p.text for p in _speed_module().sample_posts(n_posts)]
    batch = 5_000
    out: dict[str, Any] = {"posts": len(texts), "cpus": sorted(os.sched_getaffinity(0))}

    analyzer = SentimentIntensityAnalyzer()
    out["VADER"] = {
        "posts_per_s_batched": _throughput(lambda b: [analyzer.polarity_scores(t) for t in b], texts, batch),
        **_latency(analyzer.polarity_scores, texts[:singles]),
    }

    tweets, _stats = load_airline(root)
    model = tfidf_lr().fit([t.text for t in tweets], [t.sentiment for t in tweets])
    out["TF-IDF + LR"] = {
        "posts_per_s_batched": _throughput(model.predict, texts, batch),
        **_latency(lambda t: model.predict([t]), texts[:singles]),
    }
    # The workload of triage_speed.py --airline.
    airline = [p.text for p in _speed_module().airline_posts(n_posts, str(root))]
    out["VADER, real airline tweets"] = {
        "posts_per_s_batched": _throughput(lambda b: [analyzer.polarity_scores(t) for t in b], airline, batch),
        **_latency(analyzer.polarity_scores, airline[:singles]),
    }
    out["TF-IDF + LR, real airline tweets"] = {
        "posts_per_s_batched": _throughput(model.predict, airline, batch),
        **_latency(lambda t: model.predict([t]), airline[:singles]),
    }

    module = semantic_module() if semantic else None
    if module is not None:
        few = texts[: min(len(texts), 2_000)]
        start = time.perf_counter()
        module.embed(few[:64])  # loads the model
        loaded = time.perf_counter() - start
        out["semantic embed"] = {
            "posts_per_s_batched": _throughput(module.embed, few, 64, rounds=1),
            **_latency(lambda t: module.embed([t]), texts[: min(singles, 300)]),
            "posts": len(few),
            "batch": 64,
            "load_and_first_batch_s": loaded,
            "model": module.model_info(),
        }
    return out


# --- report -------------------------------------------------------------------------------------------------------


def _fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def markdown_quality(results: Sequence[Result]) -> str:
    lines = [
        "| task | method | training | macro-F1 | accuracy | per-class F1 | time s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.macro_f1 is None:
            lines.append(f"| {r.task} | {r.method} | {r.training} | — | — | {r.note} | — |")
            continue
        per_class = ", ".join(f"{k} {v:.2f}" for k, v in r.f1.items())
        lines.append(
            f"| {r.task} | {r.method} | {r.training} | {_fmt(r.macro_f1)} | {_fmt(r.accuracy)} | {per_class} "
            f"| {_fmt(r.seconds, 1)} |"
        )
    return "\n".join(lines)


def markdown_speed(speed: dict[str, Any]) -> str:
    lines = ["| method (one core) | posts/s batched | single p50 ms | single p99 ms |", "|---|---|---|---|"]
    # (row name, figures, which throughput key): triage_speed.py prints the columnar and the full-result figure.
    rows: list[tuple[str, dict[str, Any], str]] = []
    for name, key in (
        ("caredesk shipped", "caredesk"),
        ("caredesk shipped, no PII in posts, gc.freeze()", "caredesk --no-pii --freeze"),
        ("caredesk shipped, real airline tweets", "caredesk --airline"),
    ):
        fig = speed.get(key, {})
        rows.append((f"{name}: classify_batch (decisions and scores as columns)", fig, "columnar_posts_per_s_batched"))
        rows.append((f"{name}: classify (full results with reasons)", fig, "full_posts_per_s_batched"))
    baselines = speed.get("baselines", {})
    rows += [
        (name, baselines.get(name, {}), "posts_per_s_batched")
        for name in ("VADER", "TF-IDF + LR", "VADER, real airline tweets", "TF-IDF + LR, real airline tweets",
                     "semantic embed")
        if name in baselines
    ]
    for name, fig, key in rows:
        if key not in fig:
            lines.append(f"| {name} | — | — | — |")
            continue
        lines.append(
            f"| {name} | {fig[key]:,.0f} | {_fmt(fig.get('single_p50_ms'), 2)} | {_fmt(fig.get('single_p99_ms'), 2)} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        m = re.search(r"Model name:\s*(.+)", out)
        cpu = m.group(1).strip() if m else ""
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        help="folder with airline-sentiment/ and twcs-sample/ (default: $CAREDESK_DATA or <repo>/../shared/data)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2,000 airline tweets, 3 folds, a small speed run"
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-semantic", action="store_true", help="skip the semantic variants even if installed")
    parser.add_argument(
        "--fine-tune", action="store_true", help=f"also run '{FINE_TUNE}' on airline sentiment (needs PyTorch)"
    )
    parser.add_argument(
        "--methods", help="comma-separated cross-validated methods to run (default: all), e.g. 'caredesk train'"
    )
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true", help="only the speed runs (no quality, no CV)")
    parser.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="cross-validations run at once (default: 2)"
    )
    parser.add_argument("--json", metavar="OUT", help="write every figure to this JSON file")
    parser.add_argument("--speed-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--speed-posts", type=int, default=50_000, help=argparse.SUPPRESS)
    parser.add_argument("--speed-singles", type=int, default=2_000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = data_dir(args.data)
    if not (root / "airline-sentiment" / "Tweets.csv").is_file():
        print(
            f"error: no airline-sentiment/Tweets.csv under {root}; pass --data DIR or set CAREDESK_DATA",
            file=sys.stderr,
        )
        return 2
    if args.speed_worker:
        print(json.dumps(speed_worker(root, args.speed_posts, args.speed_singles, not args.no_semantic)))
        return 0

    started = time.perf_counter()
    folds = 3 if args.quick and args.folds == 5 else args.folds
    tweets, airline_stats = load_airline(root)
    inbound, twcs_stats = load_twcs(root)
    base_rate = float(np.mean([p.needs_reply for p in inbound]))
    if args.quick:
        tweets = [tweets[i] for i in stratified_sample([t.sentiment for t in tweets], 2000, args.seed)]
        airline_stats["quick_sample"] = len(tweets)
    semantic = None if args.no_semantic else semantic_module()
    print(f"data: {root}")
    print(f"airline: {airline_stats}; twcs: {twcs_stats}, needs-reply base rate {base_rate:.3f}")
    print(f"caredesk training API: {'yes' if training_module() else 'no'}; semantic: {'yes' if semantic else 'no'}")
    setup = Setup(
        folds=folds,
        seed=args.seed,
        semantic=semantic is not None,
        fine_tune=args.fine_tune and semantic is not None,
        methods=tuple(m.strip() for m in (args.methods or "").split(",") if m.strip()),
    )

    vader = Vader()
    embedding: dict[str, Any] = {}
    results: list[Result] = []
    with EmbeddingCache(semantic) if semantic and not args.speed_only else contextlib.nullcontext() as cache:
        if cache is not None and semantic is not None:
            # One embedding pass over every distinct text, timed on its own; the CV runs then reuse it.
            distinct = list(dict.fromkeys([t.text for t in tweets] + [p.text for p in inbound]))
            cache(distinct)
            embedding = {"texts": len(distinct), "seconds": cache.seconds, "model": semantic.model_info()}
            print(f"[semantic embedding of {len(distinct)} texts: {cache.seconds:.1f} s]", flush=True)
        if not args.speed_only:
            rows = (
                sentiment_rows(tweets, vader, setup)
                + topic_rows(tweets, setup)
                + needs_reply_rows(inbound, vader, setup)
            )
            t0 = time.perf_counter()
            results = run_rows(rows, args.jobs)
            print(f"[cross-validation, {args.jobs} at a time: {time.perf_counter() - t0:.1f} s]", flush=True)

    speed: dict[str, Any] = {}
    if not args.no_speed:
        n_posts, singles = (5_000, 300) if args.quick else (50_000, 2_000)
        speed["caredesk"] = run_triage_speed(n_posts, singles)
        # The best case bench/triage_speed.py knows: no PII suffixes, gc.freeze() after warm-up (as a worker may).
        speed["caredesk --no-pii --freeze"] = run_triage_speed(n_posts, singles, "--no-pii", "--freeze")
        # Real tweets: longer than the written examples, and a workload that stays the same when they change.
        speed["caredesk --airline"] = run_triage_speed(n_posts, singles, "--airline", str(root))
        speed["baselines"] = run_baseline_speed(root, n_posts, singles, semantic is not None)

    if results:
        print(f"\n## Quality (needs-reply base rate {base_rate:.3f})\n")
        print(markdown_quality(results))
    if speed:
        print("\n## Speed (one core)\n")
        print(markdown_speed(speed))
        for part in speed:
            if isinstance(speed[part], dict) and speed[part].get("returncode"):
                print(f"{part} speed run failed: {speed[part].get('stderr', '')}")
    total = time.perf_counter() - started
    print(f"\ntotal {total:.0f} s")

    if args.json:
        payload = {
            "machine": machine(),
            "args": {**vars(args), "folds": folds},
            "data": {
                "root": str(root),
                "airline": airline_stats,
                "twcs": twcs_stats,
                "needs_reply_base_rate": base_rate,
            },
            "topic_map": TOPIC_MAP,
            "semantic_embedding": embedding,
            "results": [asdict(r) for r in results],
            "speed": speed,
            "seconds": total,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
