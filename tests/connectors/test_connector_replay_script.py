"""The bundled demo script: it must load, tell complete threads and cover what the demo is meant to show."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from caredesk.connectors.base import ConnectorError
from caredesk.connectors.builtin.replay import BRAND_ACCOUNTS, BRAND_HANDLES, DEMO_BRANDS, load_script
from caredesk.connectors.builtin.replay.script import parse_script

KEYS = {"id", "brand", "offset_s", "author", "text", "in_reply_to", "conversation", "direct", "lang"}
AUTHOR_KEYS = {"id", "handle", "name", "followers", "verified"}


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    text = (
        resources.files("caredesk.connectors.builtin.replay").joinpath("demo_posts.jsonl").read_text("utf-8")
    )
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_every_record_has_the_documented_shape(records: list[dict[str, Any]]) -> None:
    assert 120 <= len(records) <= 160
    for record in records:
        assert set(record) == KEYS, record["id"]
        assert set(record["author"]) == AUTHOR_KEYS, record["id"]
        assert isinstance(record["offset_s"], float) and 0 <= record["offset_s"] <= 660
        assert record["text"].strip() and "\x00" not in record["text"]
        assert len(record["text"]) <= 280, record["id"]
    assert len({r["id"] for r in records}) == len(records)


def test_the_script_loads_and_covers_the_three_brands(records: list[dict[str, Any]]) -> None:
    script = load_script()
    assert len(script.posts) == len(records)
    assert script.brands == set(DEMO_BRANDS) == {"nimbus", "aerolark", "pennywise"}
    assert all(len(script.for_brand(brand)) >= 40 for brand in DEMO_BRANDS)


def test_something_happens_in_the_first_five_seconds(records: list[dict[str, Any]]) -> None:
    early = [r for r in records if r["offset_s"] <= 5]
    assert len(early) >= 4
    assert {r["brand"] for r in early} == set(DEMO_BRANDS)


def test_every_reply_refers_to_an_earlier_post_of_the_same_brand(records: list[dict[str, Any]]) -> None:
    earlier: dict[str, dict[str, Any]] = {}
    for record in records:
        parent_id = record["in_reply_to"]
        if parent_id is None:
            assert record["conversation"] == record["id"]
        else:
            parent = earlier.get(parent_id)
            assert parent is not None, (
                f"{record['id']} replies to {parent_id}, which is not earlier in the file"
            )
            assert parent["offset_s"] < record["offset_s"]
            assert parent["brand"] == record["brand"]
            assert parent["direct"] == record["direct"], record["id"]
            assert record["conversation"] == parent["conversation"]
        earlier[record["id"]] = record


def test_brand_posts_come_from_the_brand_accounts_and_customers_reply_to_them(
    records: list[dict[str, Any]],
) -> None:
    ours = {account for accounts in BRAND_ACCOUNTS.values() for account in accounts}
    by_id = {r["id"]: r for r in records}
    for brand, accounts in BRAND_ACCOUNTS.items():
        brand_posts = [r for r in records if r["author"]["id"] in accounts]
        assert brand_posts and all(r["brand"] == brand for r in brand_posts)
        assert {r["author"]["handle"] for r in brand_posts} == {BRAND_HANDLES[brand]}
        follow_ups = [
            r
            for r in records
            if r["brand"] == brand
            and r["author"]["id"] not in ours
            and r["in_reply_to"]
            and by_id[r["in_reply_to"]]["author"]["id"] in accounts
        ]
        assert len(follow_ups) >= 5, brand
    # An impersonator may look like a brand, but only the brand accounts are ours.
    assert any("PennyWise" in r["author"]["name"] and r["author"]["id"] not in ours for r in records)


def test_the_script_covers_what_the_demo_needs_to_show(records: list[dict[str, Any]]) -> None:
    texts = [r["text"] for r in records]
    joined = "\n".join(texts)
    assert sum("94110" in t for t in texts) >= 5  # one outage, many reporters
    assert "since we got back from vacation" in joined
    assert "grandmother" in joined
    assert re.search(r"[Aa]ccount number(?: is)? \d{4} \d{4} \d{4}", joined)
    assert re.search(r"\b\d{3}-555-01\d\d\b", joined)  # phone numbers, all from the fictional range
    assert sum(r["direct"] for r in records) >= 5
    assert {"es", "fr", "de"} <= {r["lang"] for r in records}
    assert "<script>alert(1)</script>" in joined
    assert "<img src=x onerror=alert(1)>" in joined
    assert re.search(r"(?i)giv(e|ing) ?away", joined) and re.search(r"(?i)crypto", joined)
    assert re.search(r"(?i)cancel(ling)? my|switching to|never flying", joined)
    # Links point at the reserved .example domain, never at a site someone could register and fill.
    assert not re.search(r"\b[\w-]+\.(?:com|net|org|io|ly|co)\b", joined)


@pytest.mark.parametrize(
    ("text", "reason"),
    [("nul \\u0000 here", "contains a NUL character"), ("half an emoji \\ud83d", "contains a lone UTF-16 surrogate")],
)
def test_a_script_line_postgresql_could_not_store_is_refused(
    records: list[dict[str, Any]], text: str, reason: str
) -> None:
    good = json.dumps(records[0])
    bad = good.replace(json.dumps(records[0]["text"]), json.dumps("x")[:-1] + text + '"')
    assert json.loads(bad)["text"] != records[0]["text"]
    with pytest.raises(ConnectorError, match=f"line 2: 'text' {reason}"):
        parse_script([good, bad.replace(records[0]["id"], "other-id")])
