"""``caredesk triage predict | train | eval`` run in-process on small files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from caredesk.cli import main
from caredesk.triage.cli import PREDICT_COLUMNS
from caredesk.triage.model.bundle import ModelBundle

pytest.importorskip("sklearn")

LABELLED = [
    ("my internet is down again, fix it now", "true"),
    ("charged twice this month, I want a refund", "yes"),
    ("parcel never arrived and nobody answers", "1"),
    ("the app crashes every time I log in", "true"),
    ("thanks, love the new app", "false"),
    ("great service today, cheers", "no"),
    ("just landed in Madrid", "0"),
    ("happy friday everyone", "false"),
]


def write_csv(path: Path, rows: list[dict[str, str]], header: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def labelled_csv(tmp_path: Path) -> Path:
    rows = [{"id": str(i), "text": t, "label": lab} for i, (t, lab) in enumerate(LABELLED)]
    return write_csv(tmp_path / "labelled.csv", rows, ["id", "text", "label"])


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_predict_csv_adds_the_label_columns(tmp_path: Path) -> None:
    src = labelled_csv(tmp_path)
    out = tmp_path / "out.csv"
    assert main(["triage", "predict", str(src), "--text-column", "text", "-o", str(out), "--quiet"]) == 0
    rows = read_csv(out)
    assert len(rows) == len(LABELLED)
    assert list(rows[0])[:3] == ["id", "text", "label"]
    assert set(PREDICT_COLUMNS) <= set(rows[0])
    first = rows[0]
    assert first["id"] == "0"
    assert first["complaint"] == "true" and first["needs_reply"] == "true"
    assert first["sentiment"] == "negative" and first["topic"] == "outage"
    assert 0.5 < float(first["complaint_score"]) <= 1.0
    assert rows[4]["sentiment"] == "positive" and rows[4]["complaint"] == "false"
    assert float(rows[4]["complaint_score"]) < 0.5
    assert first["language"] == "en" and first["spam"] == "false"


def test_predict_jsonl_to_jsonl_keeps_fields_and_reports_bad_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "posts.jsonl"
    src.write_text(
        json.dumps({"body": "mail me at jo@example.com, my order is missing", "n": 1}) + "\n"
        + "{not json\n"
        + json.dumps({"other": "no body here"}) + "\n"
        + "\n"
        + json.dumps({"body": "thank you so much!", "n": 2}) + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    assert main(["triage", "predict", str(src), "--text-column", "body", "-o", str(out), "--quiet"]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["n"] for r in rows] == [1, 2]
    assert rows[0]["pii"] == ["email"]
    assert rows[0]["complaint"] is True
    assert rows[1]["sentiment"] == "positive"
    err = capsys.readouterr().err
    assert f"{src}:2: skipped: not valid JSON" in err
    assert f"{src}:3: skipped: no 'body'" in err


def test_a_lone_surrogate_in_json_input_is_written_back(tmp_path: Path) -> None:
    # json.loads turns a "\\ud83d" escape into a lone surrogate, which has no UTF-8 form.
    src = tmp_path / "posts.jsonl"
    src.write_text('{"text": "bad \\ud83d service, call 07700 900123"}\n{"text": "fine"}\n', encoding="utf-8")
    jsonl, csv_out = tmp_path / "out.jsonl", tmp_path / "out.csv"
    assert main(["triage", "predict", str(src), "-o", str(jsonl), "--quiet"]) == 0
    rows = [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["bad \ud83d service, call 07700 900123", "fine"]
    assert rows[0]["pii"] == ["phone"]
    assert main(["triage", "predict", str(src), "-o", str(csv_out), "--quiet"]) == 0
    assert [r["text"] for r in read_csv(csv_out)] == ["bad \ufffd service, call 07700 900123", "fine"]


def test_malformed_csv_rows_are_reported_and_the_rest_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.csv"
    src.write_text("text,label\nfirst post,true\ntoo,many,fields\nshort\nlast post,false\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    assert main(["triage", "predict", str(src), "-o", str(out), "--quiet"]) == 0
    assert [r["text"] for r in read_csv(out)] == ["first post", "last post"]
    err = capsys.readouterr().err
    assert f"{src}:3: skipped" in err and f"{src}:4: skipped" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["triage", "predict", "{src}", "--text-column", "body", "-o", "{out}"], "no column 'body'"),
        (["triage", "predict", "{missing}", "-o", "{out}"], "cannot read"),
        (["triage", "train", "{src}", "--task", "mood", "-o", "{model}"], "unknown task 'mood'"),
        (["triage", "eval", "{src}", "--task", "mood"], "unknown task 'mood'"),
        (["triage", "train", "{src}", "--task", "sentiment", "-o", "{model}"], "no usable labels"),
        (["triage", "train", "{src}", "--task", "complaint", "--label-column", "nope", "-o", "{model}"], "no column"),
        (["triage", "predict", "{src}", "-o", "{out}", "--model", "{missing}"], "no model file"),
    ],
)
def test_bad_input_exits_2_with_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    names = {"src": labelled_csv(tmp_path), "out": tmp_path / "o.csv", "model": tmp_path / "m.npz",
             "missing": tmp_path / "missing.csv"}
    assert main([a.format(**names) for a in argv] + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err
    assert not (tmp_path / "m.npz").exists()


def test_a_label_column_with_one_class_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"text": t, "label": "true"} for t, _ in LABELLED]
    src = write_csv(tmp_path / "one.csv", rows, ["text", "label"])
    assert main(["triage", "train", str(src), "--task", "complaint", "-o", str(tmp_path / "m.npz"), "--quiet"]) == 2
    assert "at least two classes" in capsys.readouterr().err


def test_empty_labels_are_reported_by_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"text": t, "label": lab} for t, lab in LABELLED] + [{"text": "no label here", "label": ""}]
    src = write_csv(tmp_path / "gaps.csv", rows, ["text", "label"])
    model = tmp_path / "m.npz"
    assert main(["triage", "train", str(src), "--task", "complaint", "-o", str(model), "--no-semantic", "--quiet"]) == 0
    assert f"{src}:10: skipped: empty label" in capsys.readouterr().err


def test_train_then_predict_and_eval_with_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = labelled_csv(tmp_path)
    model = tmp_path / "brand.npz"
    argv = ["triage", "train", str(src), "--text-column", "text", "--label-column", "label", "--task", "complaint",
            "-o", str(model), "--no-semantic", "--quiet"]
    assert main(argv) == 0
    assert "trained complaint on 8 examples (false: 4, true: 4)" in capsys.readouterr().out
    bundle = ModelBundle.load(model)
    assert list(bundle.models) == ["complaint"]
    # A second task joins the same bundle.
    sent = [{"text": t, "label": "negative" if lab in ("true", "yes", "1") else "positive"} for t, lab in LABELLED]
    sent_src = write_csv(tmp_path / "sent.csv", sent, ["text", "label"])
    assert main(["triage", "train", str(sent_src), "--task", "sentiment", "-o", str(model), "--no-semantic",
                 "--quiet"]) == 0
    assert list(ModelBundle.load(model).models) == ["complaint", "sentiment"]

    out = tmp_path / "pred.csv"
    assert main(["triage", "predict", str(src), "-o", str(out), "--model", str(model), "--quiet"]) == 0
    assert [r["complaint"] for r in read_csv(out)] == ["true"] * 4 + ["false"] * 4

    capsys.readouterr()
    assert main(["triage", "eval", str(src), "--task", "complaint", "--model", str(model), "--quiet"]) == 0
    report = capsys.readouterr().out
    assert "macro-F1" in report and "confusion matrix" in report
    assert "true" in report and "precision" in report


def test_eval_prints_per_class_figures_for_the_shipped_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "s.jsonl"
    src.write_text(
        "\n".join(json.dumps({"text": t, "sentiment": s}) for t, s in [
            ("worst service ever, furious", "negative"),
            ("thank you, brilliant help", "positive"),
            ("what time do you open on sunday?", "neutral"),
        ]) + "\n",
        encoding="utf-8",
    )
    assert main(["triage", "eval", str(src), "--label-column", "sentiment", "--task", "sentiment", "--quiet"]) == 0
    out = capsys.readouterr().out
    lines: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.strip():
            lines.setdefault(line.split()[0], line.split()[1:])  # the first: the per-class table, not the matrix
    assert lines["macro-F1"] == ["1.000", "3"]
    assert lines["negative"][:3] == ["1.000", "1.000", "1.000"]


def test_from_corrections_needs_a_brand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["triage", "train", "--task", "complaint", "--from-corrections", "--quiet"]) == 2
    assert "--from-corrections needs --brand" in capsys.readouterr().err
