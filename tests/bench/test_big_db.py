"""The large-database generator (bench/big_db.py) at a tiny scale: the row counts it promises, every constraint and
index the migrations made back in place after loading, and an inbox page and an API list rendered from its data, so
the figures in docs/benchmarks.md come from data the pages really show."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import big_db  # noqa: E402

from caredesk.cases.models import Activity, Author, Case, Customer, Post  # noqa: E402

SIZES = big_db.Sizes(cases=60, posts=230, activities=340)


def _schema() -> set[tuple[str, ...]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conrelid = ANY(%s::regclass[])", [list(big_db.BIG_TABLES)])
        constraints = {tuple(row) for row in cursor.fetchall()}
        cursor.execute("SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
                       "WHERE indrelid = ANY(%s::regclass[])", [list(big_db.BIG_TABLES)])
        return constraints | {tuple(row) for row in cursor.fetchall()}


@pytest.fixture
def built(db: None) -> big_db.Seeded:
    before = _schema()
    seeded = big_db.seed_accounts(agents_per_brand=(2, 1, 1))
    big_db.load(connection, SIZES, seeded, seed=3, log=lambda _: None)
    assert _schema() == before  # every index and constraint is back, FKs validated over the loaded rows
    return seeded


def test_the_sizes_asked_for_are_the_rows_loaded(built: big_db.Seeded) -> None:
    assert Case.objects.count() == SIZES.cases
    assert Post.objects.count() == SIZES.posts
    assert Activity.objects.count() == SIZES.activities
    assert Author.objects.count() == Customer.objects.count() == SIZES.authors
    assert Activity.objects.filter(kind="case_created").count() == SIZES.cases
    assert Activity.objects.filter(kind="post_received").count() == SIZES.posts
    # Each case opens with its customer's post, which gave the case its labels, as the pipeline does.
    for case in Case.objects.all():
        first = case.posts.order_by("created_at", "id").first()
        assert first is not None and first.direction == "inbound" and first.author.customer_id == case.customer_id
        assert case.topic == first.triage["topic"]["value"] and case.priority == first.triage["priority"]
    assert set(Case.objects.values_list("status", flat=True)) >= {"new", "resolved"}


def test_an_inbox_page_and_an_api_list_render_from_the_data(built: big_db.Seeded, client: Client) -> None:
    from django.contrib.auth.models import User

    agent = User.objects.get(username=built.agent_username)
    client.force_login(agent)
    newest = Case.objects.exclude(status="resolved").order_by("-last_inbound_at").first()
    assert newest is not None
    page = client.get("/")
    assert page.status_code == 200
    assert newest.subject.replace("'", "&#x27;") in page.content.decode()
    token = {"Authorization": f"Bearer {built.api_token}"}
    api = client.get("/api/cases?status=new,open,pending,resolved", headers=token)
    assert api.status_code == 200 and api.json()["count"] == SIZES.cases


def test_the_same_seed_gives_the_same_texts() -> None:
    assert big_db.inbound_texts(random.Random(4), 40) == big_db.inbound_texts(random.Random(4), 40)
    assert big_db.inbound_texts(random.Random(4), 40) != big_db.inbound_texts(random.Random(5), 40)


def test_sizes_that_cannot_be_built_are_refused() -> None:
    with pytest.raises(ValueError, match="one post per case"):
        big_db.Sizes(cases=10, posts=5, activities=100)
    with pytest.raises(ValueError, match="one activity"):
        big_db.Sizes(cases=10, posts=20, activities=25)
