"""``caredesk triage predict | train | eval``: triage files of posts, train and evaluate models.

Input is CSV (with a header row) or JSONL (one JSON object a line), chosen by the file extension or ``--format``.
A malformed row is reported on stderr with its line number and skipped; nothing is dropped silently. Input
problems (unreadable file, missing column, unknown task, no usable labels, a single class) exit with status 2 and
one ``error:`` line. ``predict`` and ``eval`` need no database; ``train --brand`` does (set up lazily).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from caredesk.triage.model.bundle import TrainingError
from caredesk.triage.text.tokens import replace_lone_surrogates
from caredesk.triage.training.train import normalize_label
from caredesk.triage.vocabulary import BINARY_CLASSES, BINARY_TASKS, SENTIMENTS, TASKS

if TYPE_CHECKING:
    from caredesk.config.embedded import Environment

# Sets up Django and the database for a command that needs them, and returns the environment to stop afterwards.
# The main CLI hands it in (see add_triage_commands) so that this module never imports caredesk.cli back.
Setup = Callable[[argparse.Namespace], "Environment"]

PREDICT_COLUMNS = (
    "complaint",
    "complaint_score",
    "needs_reply",
    "needs_reply_score",
    "sentiment",
    "topic",
    "urgency",
    "pii",
    "spam",
    "language",
)
BATCH = 2000
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


class InputError(Exception):
    """A problem with the user's input: reported as ``error: ...`` with exit status 2."""


@dataclass(frozen=True, slots=True)
class Table:
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]  # line number of each row in the input file
    skipped: int


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _format(path: Path, given: str | None) -> str:
    if given:
        return given
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: cannot tell the format from the extension; use --format csv or --format jsonl")
    return fmt


def _open(path: Path) -> TextIO:
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _csv_rows(fh: TextIO, path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    reader = csv.DictReader(fh)
    columns = reader.fieldnames
    if not columns:
        raise InputError(f"{path}: empty file or no header row")
    for row in reader:
        line = reader.line_num
        if None in row:
            yield line, None, f"{len(columns) + len(row[None])} fields, the header has {len(columns)}"
        elif any(v is None for v in row.values()):
            yield line, None, f"fewer fields than the header's {len(columns)}"
        else:
            yield line, row, ""


def _jsonl_rows(fh: TextIO) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
    for line_no, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield line_no, None, f"not valid JSON ({exc.msg})"
            continue
        if not isinstance(value, dict):
            yield line_no, None, "not a JSON object"
            continue
        yield line_no, value, ""


def read_table(path: Path, fmt: str | None, required: Sequence[str]) -> Table:
    """Rows that have every ``required`` column; others are reported (with line numbers) and skipped."""
    file_format = _format(path, fmt)
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    columns: list[str] = []
    skipped = 0
    with _open(path) as fh:
        try:
            if file_format == "csv":
                source = _csv_rows(fh, path)
            else:
                source = _jsonl_rows(fh)
            for line, row, problem in source:
                if row is None:
                    _warn(f"{path}:{line}: skipped: {problem}")
                    skipped += 1
                    continue
                if file_format == "csv" and not columns:
                    columns = list(row)
                    missing = [c for c in required if c not in row]
                    if missing:
                        raise InputError(f"{path}: no column {missing[0]!r}; columns are: {', '.join(columns)}")
                missing = [c for c in required if row.get(c) is None]
                if missing:
                    _warn(f"{path}:{line}: skipped: no {missing[0]!r}")
                    skipped += 1
                    continue
                for key in row:
                    if key not in columns:
                        columns.append(key)
                rows.append(row)
                lines.append(line)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"cannot read {path}: {exc}") from None
    if file_format == "csv" and not columns and not rows:
        # A header-only CSV: still check the requested columns exist.
        with _open(path) as fh:
            header = next(csv.reader(fh), [])
        missing = [c for c in required if c not in header]
        if missing:
            raise InputError(f"{path}: no column {missing[0]!r}; columns are: {', '.join(header)}")
    if not rows and skipped:
        raise InputError(f"{path}: no usable rows ({skipped} skipped)")
    if file_format == "jsonl" and not rows:
        raise InputError(f"{path}: no rows")
    return Table(columns, rows, lines, skipped)


def write_table(path: Path, fmt: str | None, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    file_format = _format(path, fmt)
    try:
        with path.open("w", encoding="utf-8", newline="") as fh:
            if file_format == "csv":
                writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
                writer.writeheader()
                for row in rows:
                    values = {k: _csv_value(v) for k, v in row.items()}
                    try:
                        writer.writerow(values)
                    except UnicodeEncodeError:
                        writer.writerow({k: _valid_text(v) for k, v in values.items()})
            else:
                for row in rows:
                    try:
                        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                    except UnicodeEncodeError:
                        # A lone surrogate (from a "\ud83d" escape in the input) has no UTF-8 form; ASCII escapes
                        # write it back exactly as it was read.
                        fh.write(json.dumps(row) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _valid_text(value: Any) -> Any:
    """A string with each lone surrogate (no UTF-8 form, so no place in a CSV file) replaced by U+FFFD."""
    return replace_lone_surrogates(value) if isinstance(value, str) else value


def _progress(total: int, desc: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="post", file=sys.stderr, disable=quiet, dynamic_ncols=True)


def _load_bundle(path: Path) -> Any:
    from caredesk.triage.model.bundle import ModelBundle

    try:
        return ModelBundle.load(path)
    except FileNotFoundError:
        raise InputError(f"no model file {path}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot load model {path}: {exc}") from None


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")


# --- predict --------------------------------------------------------------------------------------------------------


def cmd_predict(args: argparse.Namespace) -> int:
    # Only decisions and scores are written, so the columnar batch is enough: no reasons or result objects.
    from caredesk.triage import classify_batch
    from caredesk.triage.types import PostSignals

    table = read_table(Path(args.input), args.format, [args.text_column])
    bundle = _load_bundle(Path(args.model)) if args.model else None
    out_rows: list[dict[str, Any]] = []
    with _progress(len(table.rows), "triage", args.quiet) as bar:
        for start in range(0, len(table.rows), BATCH):
            chunk = table.rows[start : start + BATCH]
            b = classify_batch([PostSignals(text=str(row[args.text_column])) for row in chunk], model=bundle)
            for row, complaint, c_score, needs_reply, r_score, sentiment, topic, urgency, pii, spam, language in zip(
                chunk, b.complaint.tolist(), b.complaint_score.tolist(), b.needs_reply.tolist(),
                b.needs_reply_score.tolist(), b.sentiment.tolist(), b.topic.tolist(), b.urgency.tolist(), b.pii,
                b.spam.tolist(), b.language.tolist(), strict=True,
            ):
                out_rows.append(
                    {
                        **row,
                        "complaint": complaint,
                        "complaint_score": _prob(complaint, c_score),
                        "needs_reply": needs_reply,
                        "needs_reply_score": _prob(needs_reply, r_score),
                        "sentiment": sentiment,
                        "topic": topic,
                        "urgency": urgency,
                        "pii": sorted({m.kind for m in pii}),
                        "spam": spam,
                        "language": language,
                    }
                )
            bar.update(len(chunk))
    columns = [*table.columns, *(c for c in PREDICT_COLUMNS if c not in table.columns)]
    write_table(Path(args.output), args.output_format, columns, out_rows)
    print(f"wrote {len(out_rows)} rows to {args.output}" + (f" ({table.skipped} skipped)" if table.skipped else ""),
          file=sys.stderr)
    return 0


def _prob(value: Any, score: float) -> float:
    """Label scores are the confidence of the decided value; files get the score of "true" (0..1)."""
    return round(score if value else 1.0 - score, 3)


# --- labelled input -------------------------------------------------------------------------------------------------


def read_labelled(args: argparse.Namespace, task: str) -> tuple[list[str], list[str]]:
    path = Path(args.input)
    table = read_table(path, args.format, [args.text_column, args.label_column])
    texts: list[str] = []
    labels: list[str] = []
    for row, line in zip(table.rows, table.lines, strict=True):
        try:
            label = normalize_label(row[args.label_column], task)
        except ValueError as exc:
            _warn(f"{path}:{line}: skipped: {exc}")
            continue
        texts.append(str(row[args.text_column]))
        labels.append(label)
    if not labels:
        raise InputError(f"{path}: no usable labels in column {args.label_column!r} for task {task!r}")
    return texts, labels


def _check_classes(labels: Sequence[str], what: str) -> None:
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise InputError(f"{what}: every label is {classes[0]!r}; training needs at least two classes")


# --- train ------------------------------------------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace, setup: Setup) -> int:
    from caredesk.triage.model.bundle import ModelBundle
    from caredesk.triage.training.train import cross_validate, train_model

    _check_task(args.task)
    if args.from_corrections and not args.brand:
        raise InputError("--from-corrections needs --brand SLUG")
    if not args.input and not args.from_corrections:
        raise InputError("give an INPUT file, or --brand SLUG --from-corrections")
    if not args.output and not args.brand:
        raise InputError("give -o MODEL (or --brand SLUG to store the model for a brand)")
    texts: list[str] = []
    labels: list[str] = []
    sources: list[str] = []
    if args.input:
        texts, labels = read_labelled(args, args.task)
        sources.append(Path(args.input).name)
    if args.brand:
        return _train_brand(args, texts, labels, sources, setup)
    _check_classes(labels, args.input)
    semantic = _semantic_flag(args)
    try:
        if args.cv:
            report = cross_validate(texts, labels, args.task, folds=args.cv, semantic=semantic, progress=not args.quiet,
                                    fine_tune=args.fine_tune)
            print(f"{args.cv}-fold cross-validation ({len(texts)} examples):\n{report.format()}\n")
        model = train_model(texts, labels, args.task, semantic=semantic, progress=not args.quiet,
                            source=", ".join(sources), fine_tune=args.fine_tune)
    except TrainingError as exc:
        raise InputError(str(exc)) from None
    output = Path(args.output)
    bundle = ModelBundle()
    if output.exists() and not args.replace:
        bundle = _load_bundle(output)
    replaced = args.task in bundle.models
    bundle = ModelBundle({**bundle.models, args.task: model})
    bundle.save(output)
    note = " (replaced the earlier model for it)" if replaced else ""
    print(
        f"trained {args.task} on {len(texts)} examples {_counts(labels)}; saved to {output} with tasks "
        f"{', '.join(bundle.models)}{note}"
    )
    return 0


def _counts(labels: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return "(" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ")"


def _semantic_flag(args: argparse.Namespace) -> bool | None:
    if args.semantic:
        return True
    if args.no_semantic:
        return False
    return None


def _train_brand(
    args: argparse.Namespace, texts: list[str], labels: list[str], sources: list[str], setup: Setup
) -> int:
    """Train from the file and/or the brand's stored corrections, and store the model for the brand (needs the DB)."""
    from caredesk.triage.model.bundle import ModelBundle
    from caredesk.triage.training.train import train_model

    env = setup(args)
    try:
        from caredesk.triage import brand_models

        if args.from_corrections:
            try:
                more_texts, more_labels = brand_models.corrections_dataset(args.brand, args.task)
            except brand_models.BrandModelError as exc:
                raise InputError(str(exc)) from None
            texts = [*texts, *more_texts]
            labels = [*labels, *(normalize_label(v, args.task) for v in more_labels)]
            sources.append(f"corrections of {args.brand} ({len(more_texts)})")
        if not labels:
            raise InputError(f"no labelled examples for {args.task!r} (brand {args.brand!r})")
        _check_classes(labels, f"brand {args.brand}")
        try:
            model = train_model(texts, labels, args.task, semantic=_semantic_flag(args), progress=not args.quiet,
                                source=", ".join(sources), fine_tune=args.fine_tune)
        except TrainingError as exc:
            raise InputError(str(exc)) from None
        bundle = ModelBundle({args.task: model})
        metrics = {"n_examples": len(texts), args.task: {"n_examples": len(texts), **model.meta["class_counts"]}}
        try:
            brand_models.store_brand_model(args.brand, bundle, metrics, n_examples=len(texts))
        except brand_models.BrandModelError as exc:
            raise InputError(str(exc)) from None
        if args.output:
            bundle.save(Path(args.output))
        print(f"trained {args.task} for brand {args.brand} on {len(texts)} examples {_counts(labels)}")
        return 0
    finally:
        env.stop()


# --- eval -------------------------------------------------------------------------------------------------------------


def cmd_eval(args: argparse.Namespace) -> int:
    from caredesk.triage.training.train import cross_validate, evaluate

    _check_task(args.task)
    texts, labels = read_labelled(args, args.task)
    if args.cv:
        _check_classes(labels, args.input)
        try:
            report = cross_validate(texts, labels, args.task, folds=args.cv, semantic=_semantic_flag(args),
                                    progress=not args.quiet, fine_tune=args.fine_tune)
        except TrainingError as exc:
            raise InputError(str(exc)) from None
        print(f"{args.cv}-fold cross-validation of caredesk triage train, task {args.task}, {len(texts)} examples")
    else:
        predicted = predict_task(texts, args.task, Path(args.model) if args.model else None, args.quiet)
        classes = _eval_classes(args.task, labels, predicted)
        report = evaluate(labels, predicted, classes)
        what = f"model {args.model}" if args.model else "the shipped default model"
        print(f"task {args.task}, {len(texts)} examples, {what}")
    print(report.format())
    return 0


def _eval_classes(task: str, labels: Sequence[str], predicted: Sequence[str]) -> list[str]:
    if task in BINARY_TASKS:
        return list(BINARY_CLASSES)
    if task == "sentiment":
        return list(SENTIMENTS)
    return sorted(set(labels) | set(predicted))


def predict_task(texts: Sequence[str], task: str, model: Path | None, quiet: bool) -> list[str]:
    """One task's predicted class per text, as the file labels name them ("true"/"false", "negative", a topic)."""
    from caredesk.triage import classify
    from caredesk.triage.types import PostSignals

    bundle = _load_bundle(model) if model else None
    out: list[str] = []
    with _progress(len(texts), "predicting", quiet) as bar:
        for start in range(0, len(texts), BATCH):
            chunk = texts[start : start + BATCH]
            for r in classify([PostSignals(text=t) for t in chunk], model=bundle):
                value = getattr(r, task).value
                out.append(("true" if value else "false") if isinstance(value, bool) else str(value))
            bar.update(len(chunk))
    return out


# --- wiring -----------------------------------------------------------------------------------------------------------


def _run(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            result: int = func(args)
            return result
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    return run


FINE_TUNE_HELP = (
    "also fine-tune the semantic encoder on the examples: better models, slower training (PyTorch needed to "
    "train, not to predict) and prediction at the semantic model's speed"
)


def add_triage_commands(sub: Any, setup: Setup) -> None:
    """Register ``caredesk triage ...`` on the main parser's subparsers. ``setup`` prepares Django and the database
    for the commands that need them (``train --brand``)."""
    triage = sub.add_parser("triage", help="triage posts from a file; train and evaluate triage models")
    commands = triage.add_subparsers(dest="triage_command", required=True)

    def common(p: argparse.ArgumentParser, labelled: bool) -> None:
        p.add_argument("--text-column", default="text", help="column with the post text (default: text)")
        if labelled:
            p.add_argument("--label-column", default="label", help="column with the label (default: label)")
            p.add_argument("--task", required=True, help=f"one of: {', '.join(TASKS)}")
        p.add_argument("--format", choices=["csv", "jsonl"], help="input format (default: from the extension)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = commands.add_parser("predict", help="label every post of a CSV or JSONL file")
    p.add_argument("input", help="CSV or JSONL file")
    common(p, labelled=False)
    p.add_argument("-o", "--output", required=True, help="output file; CSV or JSONL by its extension")
    p.add_argument("--output-format", choices=["csv", "jsonl"], help="default: from the output's extension")
    p.add_argument("--model", help="a trained model file (from 'caredesk triage train')")
    p.set_defaults(func=_run(cmd_predict))

    p = commands.add_parser("train", help="train a task's model from a labelled file and/or a brand's corrections")
    p.add_argument("input", nargs="?", help="labelled CSV or JSONL file")
    common(p, labelled=True)
    p.add_argument("-o", "--output", help="model file (.npz); an existing bundle keeps its other tasks")
    p.add_argument("--replace", action="store_true", help="overwrite -o instead of adding the task to it")
    p.add_argument("--cv", type=int, default=0, metavar="FOLDS", help="also print k-fold cross-validation first")
    p.add_argument("--brand", help="store the model for this brand (needs the database)")
    p.add_argument("--from-corrections", action="store_true", help="train on the brand's stored label corrections")
    p.add_argument("--data-dir", type=Path, default=None, help="embedded database folder (with --brand)")
    sem = p.add_mutually_exclusive_group()
    sem.add_argument("--semantic", action="store_true", help="require sentence embeddings (caredesk[semantic])")
    sem.add_argument("--no-semantic", action="store_true", help="never use sentence embeddings")
    p.add_argument("--fine-tune", action="store_true", help=FINE_TUNE_HELP)
    p.set_defaults(func=_run(partial(cmd_train, setup=setup)))

    p = commands.add_parser("eval", help="precision, recall, F1 and confusion matrix on a labelled file")
    p.add_argument("input", help="labelled CSV or JSONL file")
    common(p, labelled=True)
    p.add_argument("--model", help="a trained model file; default: the shipped model")
    p.add_argument("--cv", type=int, default=0, metavar="FOLDS",
                   help="cross-validate training on the file instead of scoring an existing model")
    sem = p.add_mutually_exclusive_group()
    sem.add_argument("--semantic", action="store_true", help="with --cv: require sentence embeddings")
    sem.add_argument("--no-semantic", action="store_true", help="with --cv: never use sentence embeddings")
    p.add_argument("--fine-tune", action="store_true", help="with --cv: " + FINE_TUNE_HELP)
    p.set_defaults(func=_run(cmd_eval))
