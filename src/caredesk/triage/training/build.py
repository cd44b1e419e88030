"""Build the shipped default model (``model_default.npz``) from the package's example files.

    python -m caredesk.triage.training.build                    # rebuild model_default.npz
    python -m caredesk.triage.training.build --check            # rebuild in memory, fail if the shipped file is stale
    python -m caredesk.triage.training.build --search           # print the hyper-parameter search behind HYPER

Training data (see MODEL_CARD.md): ``seed_examples.jsonl`` and ``data/written_examples.jsonl`` (written for this
project), and weak labels derived at build time from two permissively licensed public sets: BANKING77 (Casanueva et
al. 2020, CC BY 4.0) and the IBM Twitter customer-care conversations (Apache-2.0). Those sets are read from
``--data`` (default: ``$CAREDESK_DATA`` or ``../shared/data`` beside the repository) and never copied into the
package; only the trained weights ship. No other data set is read. Needs scikit-learn; deterministic (saga with a
fixed seed on a fixed matrix).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from caredesk.triage.model.bundle import Dense, Mix, ModelBundle, TrainedModel
from caredesk.triage.model.classifier import MIX_INPUTS, STACK_FEATURES, Engine
from caredesk.triage.rules.pii import mask_pii
from caredesk.triage.training.fitting import stratified_folds
from caredesk.triage.training.train import _fit_model
from caredesk.triage.vocabulary import MODEL_TASKS, SPAM

SEED_FILE = "seed_examples.jsonl"
WRITTEN_FILE = "data/written_examples.jsonl"
# Later batches of written examples sit beside the first as data/written_*.jsonl; all are read, in name order.
WRITTEN_GLOB = "written_*.jsonl"
MODEL_FILE = "model_default.npz"
SHIPPED_TASKS = MODEL_TASKS
# (C, class weighting) per task, from ``--search`` (3-fold CV on the training files; macro-F1). Fixed here so that a
# rebuild is one fit per task and ``--check`` stays quick.
HYPER: dict[str, tuple[float, str | None]] = {
    "complaint": (2.0, "balanced"),
    "needs_reply": (2.0, "balanced"),
    "sentiment": (2.0, "balanced"),
    "topic": (2.0, "balanced"),
}
# The sentiment mix (see fit_sentiment_mix; the scores it weighs are classifier.MIX_INPUTS): its L2 strength and
# how many folds give its out-of-fold inputs.
MIX_C = 0.1
MIX_FOLDS = 5
_HANDLE = re.compile(r"(?<![\w@])@\w+")
BANKING_PER_INTENT = 30  # enough to teach the vocabulary of money questions without drowning the social posts

# BANKING77 intent -> (topic, is it a complaint). Every query is addressed to the bank, so needs_reply is true.
# Problems with money the customer expected (declined, pending, missing, charged twice) are complaints; how-to and
# information requests are not. Sentiment is not derived: the queries are written in a flat, neutral register.
BANKING77: dict[str, tuple[str, bool]] = {
    "activate_my_card": ("account", False),
    "age_limit": ("question", False),
    "apple_pay_or_google_pay": ("technical", False),
    "atm_support": ("question", False),
    "automatic_top_up": ("billing", False),
    "balance_not_updated_after_bank_transfer": ("billing", True),
    "balance_not_updated_after_cheque_or_cash_deposit": ("billing", True),
    "beneficiary_not_allowed": ("billing", True),
    "cancel_transfer": ("billing", False),
    "card_about_to_expire": ("account", False),
    "card_acceptance": ("question", False),
    "card_arrival": ("delivery", True),
    "card_delivery_estimate": ("delivery", False),
    "card_linking": ("technical", False),
    "card_not_working": ("technical", True),
    "card_payment_fee_charged": ("billing", True),
    "card_payment_not_recognised": ("billing", True),
    "card_payment_wrong_exchange_rate": ("billing", True),
    "card_swallowed": ("technical", True),
    "cash_withdrawal_charge": ("billing", False),
    "cash_withdrawal_not_recognised": ("billing", True),
    "change_pin": ("account", False),
    "compromised_card": ("account", True),
    "contactless_not_working": ("technical", True),
    "country_support": ("question", False),
    "declined_card_payment": ("billing", True),
    "declined_cash_withdrawal": ("billing", True),
    "declined_transfer": ("billing", True),
    "direct_debit_payment_not_recognised": ("billing", True),
    "disposable_card_limits": ("question", False),
    "edit_personal_details": ("account", False),
    "exchange_charge": ("billing", False),
    "exchange_rate": ("billing", False),
    "exchange_via_app": ("billing", False),
    "extra_charge_on_statement": ("billing", True),
    "failed_transfer": ("billing", True),
    "fiat_currency_support": ("question", False),
    "get_disposable_virtual_card": ("question", False),
    "get_physical_card": ("delivery", False),
    "getting_spare_card": ("delivery", False),
    "getting_virtual_card": ("question", False),
    "lost_or_stolen_card": ("account", False),
    "lost_or_stolen_phone": ("account", False),
    "order_physical_card": ("delivery", False),
    "passcode_forgotten": ("account", False),
    "pending_card_payment": ("billing", True),
    "pending_cash_withdrawal": ("billing", True),
    "pending_top_up": ("billing", True),
    "pending_transfer": ("billing", True),
    "pin_blocked": ("account", True),
    "receiving_money": ("billing", False),
    "Refund_not_showing_up": ("billing", True),
    "request_refund": ("billing", False),
    "reverted_card_payment?": ("billing", True),
    "supported_cards_and_currencies": ("question", False),
    "terminate_account": ("cancellation", False),
    "top_up_by_bank_transfer_charge": ("billing", False),
    "top_up_by_card_charge": ("billing", False),
    "top_up_by_cash_or_cheque": ("billing", False),
    "top_up_failed": ("billing", True),
    "top_up_limits": ("question", False),
    "top_up_reverted": ("billing", True),
    "topping_up_by_card": ("billing", False),
    "transaction_charged_twice": ("billing", True),
    "transfer_fee_charged": ("billing", True),
    "transfer_into_account": ("billing", False),
    "transfer_not_received_by_recipient": ("billing", True),
    "transfer_timing": ("billing", False),
    "unable_to_verify_identity": ("account", True),
    "verify_my_identity": ("account", False),
    "verify_source_of_funds": ("account", False),
    "verify_top_up": ("account", False),
    "virtual_card_not_working": ("technical", True),
    "visa_or_mastercard": ("question", False),
    "why_verify_identity": ("account", False),
    "wrong_amount_of_cash_received": ("billing", True),
    "wrong_exchange_rate_for_cash_withdrawal": ("billing", True),
}


@dataclass(frozen=True, slots=True)
class Example:
    """A post and whichever labels its source can honestly give (None: not labelled for that task)."""

    text: str
    source: str
    labels: dict[str, str]


def package_path(name: str) -> Path:
    return Path(str(resources.files("caredesk.triage") / name))


def _label(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def load_jsonl(name: str, source: str) -> list[Example]:
    out: list[Example] = []
    with package_path(name).open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            raw = json.loads(line)
            labels = {t: _label(raw[t]) for t in (*SHIPPED_TASKS, SPAM) if t in raw and raw[t] is not None}
            out.append(Example(raw["text"], raw.get("source", source), labels))
    return out


def written_files() -> list[str]:
    """The package's written-example files, relative to the package, in name order (the first batch first)."""
    folder = package_path(WRITTEN_FILE).parent
    return [f"{folder.name}/{p.name}" for p in sorted(folder.glob(WRITTEN_GLOB))]


def load_written() -> list[Example]:
    return [ex for name in written_files() for ex in load_jsonl(name, "written")]


def default_data_dir() -> Path:
    """Where the public training sets live: ``$CAREDESK_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get("CAREDESK_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[4].parent / "shared" / "data"


def has_public_data(data: Path | None = None) -> bool:
    data = data or default_data_dir()
    return (data / "banking77" / "train.csv").is_file() and (data / "ibm-twitter-cdp" / "dev.json").is_file()


def load_examples(data: Path | None = None) -> list[Example]:
    """All training examples, first occurrence of a text kept (seed, then written, then weak labels derived from
    the public sets in ``data``)."""
    data = data or default_data_dir()
    if not has_public_data(data):
        raise SystemExit(f"the public training sets (banking77/, ibm-twitter-cdp/) are not in {data}: pass --data DIR")
    weak = [
        Example(row["text"], row["source"],
                {t: _label(row[t]) for t in (*SHIPPED_TASKS, SPAM) if t in row and row[t] is not None})
        for row in derive_weak(data)
    ]
    seen: set[str] = set()
    out: list[Example] = []
    for ex in [*load_jsonl(SEED_FILE, "seed"), *load_written(), *weak]:
        key = ex.text.strip().lower()
        if key not in seen:
            seen.add(key)
            out.append(ex)
    return out


def derive_weak(data: Path) -> list[dict[str, Any]]:
    """Weak labels from BANKING77 (train split, BANKING_PER_INTENT per intent) and the IBM care threads."""
    rows: list[dict[str, Any]] = []
    with (data / "banking77" / "train.csv").open(encoding="utf-8", newline="") as fh:
        by_intent: dict[str, list[str]] = {}
        for r in csv.DictReader(fh):
            by_intent.setdefault(r["category"], []).append(r["text"].strip())
    unknown = set(by_intent) - set(BANKING77)
    if unknown:
        raise SystemExit(f"BANKING77 intents without a mapping: {sorted(unknown)}")
    rng = np.random.default_rng(77)
    for intent in sorted(by_intent):
        texts = sorted(set(by_intent[intent]))
        pick = rng.permutation(len(texts))[:BANKING_PER_INTENT]
        topic, complaint = BANKING77[intent]
        for i in sorted(pick.tolist()):
            rows.append(
                {"text": texts[i], "source": f"banking77:{intent}", "complaint": complaint, "needs_reply": True,
                 "topic": topic}
            )
    # IBM: the first customer turn of each thread; every thread got a brand reply, so needs_reply is true.
    # Nothing else is derived (the set has no complaint, sentiment or topic labels).
    for split in ("dev.json", "test.json"):
        with (data / "ibm-twitter-cdp" / split).open(encoding="utf-8") as fh:
            threads = json.load(fh)
        for thread in threads:
            first = thread["dialogContent"][0]
            if "client" in first and first.get("message", "").strip():
                rows.append({"text": private(first["message"]), "source": "ibm-twitter-cdp", "needs_reply": True})
    return rows


def private(text: str) -> str:
    """A real tweet as we keep it: whitespace collapsed, personal data masked (caredesk's own PII rules), every
    @handle replaced by @user (the models see handles only as a placeholder anyway)."""
    return _HANDLE.sub("@user", mask_pii(" ".join(text.split())))


def digest(examples: Sequence[Example]) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.text, ex.source, ex.labels], sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def task_data(examples: Sequence[Example], task: str) -> tuple[list[str], list[str], dict[str, int]]:
    texts: list[str] = []
    labels: list[str] = []
    sources: dict[str, int] = {}
    for ex in examples:
        if task in ex.labels:
            texts.append(ex.text)
            labels.append(ex.labels[task])
            kind = ex.source.split(":")[0]
            sources[kind] = sources.get(kind, 0) + 1
    return texts, labels, sources


def _fit_shipped(texts: Sequence[str], labels: Sequence[str], task: str, hyper: tuple[float, str | None] | None
                 ) -> TrainedModel:
    return _fit_model(texts, labels, task, dense=Dense(None, None), stack=False, semantic=False, hyper=hyper,
                      source="caredesk default model")


def fit_sentiment_mix(
    texts: Sequence[str], labels: Sequence[str], models: dict[str, TrainedModel], hyper: tuple[float, str | None]
) -> Mix:
    """Learn how much the lexicon, the sentiment model and the complaint evidence each count for sentiment.

    The inputs of each written example come from a sentiment model that did not see it (MIX_FOLDS-fold, the other
    tasks' full models), so the mix learns how far to trust the model on new text, not on its own training set.
    """
    from sklearn.linear_model import LogisticRegression

    cols = [STACK_FEATURES.index(name) for name in MIX_INPUTS]
    fold = stratified_folds(labels, MIX_FOLDS, 0)
    x = np.zeros((len(texts), len(cols)))
    for f in range(MIX_FOLDS):
        train, test = np.flatnonzero(fold != f).tolist(), np.flatnonzero(fold == f).tolist()
        held_out = _fit_shipped([texts[i] for i in train], [labels[i] for i in train], "sentiment", hyper)
        engine = Engine(ModelBundle({**models, "sentiment": held_out}))
        x[test] = engine.stack_features([texts[i] for i in test])[:, cols]
    classes = tuple(sorted(set(labels)))
    y = np.array([classes.index(v) for v in labels])
    # Unweighted: the written examples' own class balance is the prior; strong L2 keeps the few weights smooth.
    clf = LogisticRegression(C=MIX_C, max_iter=5000).fit(x, y)
    return Mix(
        task="sentiment",
        inputs=MIX_INPUTS,
        classes=classes,
        weights=np.asarray(clf.coef_, dtype=np.float64).T,
        bias=np.asarray(clf.intercept_, dtype=np.float64),
        meta={"C": MIX_C, "folds": MIX_FOLDS, "n_examples": len(texts)},
    )


def build(hyper: dict[str, tuple[float, str | None]] | None = None, data: Path | None = None) -> ModelBundle:
    import sklearn

    hyper = hyper or HYPER
    examples = load_examples(data)
    sha = digest(examples)
    models: dict[str, TrainedModel] = {}
    for task in SHIPPED_TASKS:
        texts, labels, sources = task_data(examples, task)
        model = _fit_shipped(texts, labels, task, hyper.get(task))
        model.meta.update(
            {"name": "caredesk-triage-default", "data_sha256": sha, "sources": sources, "sklearn": sklearn.__version__}
        )
        model.meta.pop("trained_at", None)  # keeps the file byte-stable across rebuilds
        models[task] = model
    texts, labels, _ = task_data(examples, "sentiment")
    mix = fit_sentiment_mix(texts, labels, models, hyper["sentiment"])
    mix.meta["data_sha256"] = sha
    return ModelBundle(models, {"sentiment": mix})


def same_bundle(a: ModelBundle, b: ModelBundle, atol: float = 2e-2) -> bool:
    """Same tasks, data digest and vocabulary; weights equal up to solver noise across platforms."""
    if list(a.models) != list(b.models):
        return False
    for task, m in a.models.items():
        o = b.models[task]
        if m.classes != o.classes or m.meta.get("data_sha256") != o.meta.get("data_sha256"):
            return False
        if m.text.vocab != o.text.vocab or not np.array_equal(m.text.bigrams, o.text.bigrams):
            return False
        pairs = ((m.text.w_word, o.text.w_word), (m.text.w_gram, o.text.w_gram), (m.text.w_bigram, o.text.w_bigram),
                 (m.bias, o.bias))
        if not all(np.allclose(x, y, atol=atol) for x, y in pairs):
            return False
    if list(a.mixes) != list(b.mixes):
        return False
    for task, mix in a.mixes.items():
        other = b.mixes[task]
        if mix.inputs != other.inputs or mix.classes != other.classes:
            return False
        if not (np.allclose(mix.weights, other.weights, atol=atol) and np.allclose(mix.bias, other.bias, atol=atol)):
            return False
    return True


def search() -> dict[str, Any]:
    from caredesk.triage.training.fitting import choose
    from caredesk.triage.training.train import _design

    examples = load_examples()
    out: dict[str, Any] = {}
    for task in SHIPPED_TASKS:
        texts, labels, _ = task_data(examples, task)
        classes = sorted(set(labels))
        y = np.array([classes.index(v) for v in labels])
        c, cw, results = choose(_design(texts).matrix, y, len(classes), 0)
        out[task] = {"C": c, "class_weight": cw, "results": results}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the shipped weights are stale")
    parser.add_argument("--data", type=Path, help="folder with banking77/ and ibm-twitter-cdp/ (default: "
                        "$CAREDESK_DATA or ../shared/data beside the repository)")
    parser.add_argument("--search", action="store_true", help="print the hyper-parameter search and exit")
    parser.add_argument("--out", type=Path, help=f"where to write (default: the package's {MODEL_FILE})")
    args = parser.parse_args(argv)
    if args.search:
        print(json.dumps(search(), indent=2))
        return 0
    bundle = build(data=args.data)
    if args.check:
        ok = same_bundle(bundle, ModelBundle.load(package_path(MODEL_FILE)))
        stale = f"{MODEL_FILE} is stale: run python -m caredesk.triage.training.build"
        print(f"{MODEL_FILE} is up to date" if ok else stale)
        return 0 if ok else 1
    out = args.out or package_path(MODEL_FILE)
    bundle.save(out)
    counts = {t: m.meta["n_examples"] for t, m in bundle.models.items()}
    print(f"wrote {out}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
