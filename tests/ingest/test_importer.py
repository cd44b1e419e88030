from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from caredesk.cases.models import Case, Post
from caredesk.ingest.importer import import_file

pytestmark = pytest.mark.django_db


def _run(path: Path, **kw) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = import_file(path, brand_slug=kw.pop("brand", "acme"), file_format=kw.pop("file_format", None),
                       batch_size=kw.pop("batch_size", 2), platform="x", progress=False, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _jsonl(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _rec(i: str, text: str, **kw) -> str:
    return json.dumps({"id": i, "text": text, "created_at": "2026-11-20T10:00:00Z", "author_id": "u" + i,
                       "author_handle": "h" + i, **kw})


def test_malformed_records_are_reported_and_the_rest_kept(tmp_path):
    path = _jsonl(tmp_path, [
        _rec("1", "my internet is down"),
        "{not json",
        json.dumps({"id": "3", "created_at": "2026-11-20T10:00:00Z", "author_id": "u3"}),  # no text
        _rec("4", "why was I billed twice?"),
        _rec("5", "the app crashes on login", created_at="yesterday"),
        _rec("6", "great service today, thanks!"),
    ])
    code, out, err = _run(path)
    assert code == 1
    assert sorted(Post.objects.values_list("external_id", flat=True)) == ["1", "4", "6"]
    assert "posts.jsonl:2: rejected" in err
    assert "posts.jsonl:3: rejected" in err and "text" in err
    assert "posts.jsonl:5: rejected" in err
    assert "imported 3 posts" in out and "3 records rejected" in out


def test_import_twice_is_idempotent(tmp_path):
    path = _jsonl(tmp_path, [_rec("1", "my internet is down"), _rec("2", "no signal at all", in_reply_to="1")])
    assert _run(path)[0] == 0
    code, out, _ = _run(path)
    assert code == 0 and "imported 0 posts" in out and "2 already known" in out
    assert Post.objects.count() == 2


def test_csv_import(tmp_path):
    path = tmp_path / "posts.csv"
    path.write_text(
        "id,text,created_at,author_id,author_handle\n"
        "c1,\"my bill is wrong, charged twice\",2026-11-20T10:00:00+00:00,u1,casey\n"
        "c2,still waiting for an answer,2026-11-20T11:00:00+00:00,u1,casey\n"
    )
    code, out, _ = _run(path, brand="csv-brand")
    assert code == 0
    assert Case.objects.get().posts.count() == 2


def test_missing_file_is_a_clear_error(tmp_path):
    code, _, err = _run(tmp_path / "nope.jsonl")
    assert code == 2 and "no such file" in err


def test_unknown_format_is_a_clear_error(tmp_path):
    path = tmp_path / "posts.txt"
    path.write_text("hello\n")
    code, _, err = _run(path)
    assert code == 2 and "format" in err
