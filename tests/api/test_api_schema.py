"""The API keeps the promises of its own OpenAPI schema: a bounded schemathesis run over every operation.

Every check schemathesis has for a single request runs (no server error, documented status codes, content types
and response bodies, schema-valid requests accepted, schema-invalid ones refused, 401 without credentials...), in
its three phases: the schema's examples, coverage (boundary and missing values) and fuzzing, both with
schema-valid and schema-invalid data. The run is derandomized and small, so it tests the same requests every time
and takes seconds.

The requests go through Django's WSGI handler in this thread, so they see this test's rows and are rolled back
with it: whatever the run writes (notes, replies, assignments) is gone after the test.

A longer run against a served desk (``caredesk serve``, some posts ingested, ``caredesk createuser NAME --token``):

    st run http://127.0.0.1:8000/api/openapi.json -H "Authorization: Bearer $TOKEN" --checks all --seed 1

It also runs the stateful phase. It reports three rejections this test avoids by naming rows that exist (see
``_point_at_rows``), since no schema can list them: an assignee who is not a user, an ``in_reply_to`` post of
another case, a topic outside the brand's taxonomy (each a 422 with a message saying so).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings

import factories
from caredesk.accounts.actions import do_create_api_token
from caredesk.api.schemas import NOT_BLANK_PATTERN, STORABLE_PATTERN
from caredesk.cases.actions import do_resolve_case, lock_case
from caredesk.cases.models import Post
from caredesk.cases.paging import encode_cursor
from caredesk.outbox.actions import do_queue_reply
from caredesk.triage.models import get_brand_topics

# Loading needs no database: /api/openapi.json is built from the routers alone.
SCHEMA = schemathesis.openapi.from_wsgi("/api/openapi.json", get_wsgi_application())

# Per operation, for the fuzzing phase; the coverage phase adds its fixed set of boundary cases on top.
MAX_EXAMPLES = 25


@dataclass
class Desk:
    """Rows for the requests to find: without them every id in a path would be a 404 and little else is tested."""

    token: str
    ids: dict[str, list[int]]
    posts_of_case: dict[int, list[int]]
    usernames: list[str]
    topics: list[str]
    cursors: dict[str, str] = field(default_factory=dict)
    answered: list[int] = field(default_factory=list)


@pytest.fixture
def desk(db: None) -> Iterator[Desk]:
    agent = factories.make_user("ana")
    factories.make_user("ben")
    installation = factories.make_installation()
    cases = [factories.make_case(installation) for _ in range(3)]
    posts = {case.pk: list(case.posts.order_by("id").values_list("pk", flat=True)) for case in cases}
    with transaction.atomic():
        case = lock_case(cases[0].pk)
        reply = do_queue_reply(case, Post.objects.get(pk=posts[case.pk][0]), "We're on it.", agent, factories.T0)
        do_resolve_case(lock_case(cases[2].pk), agent, factories.T0)  # something to reopen
    # Django's handler closes the connection when a request ends: that would end this test's transaction, as
    # django.test.Client knows (it disconnects the same receiver while it makes a request).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    desk = Desk(
        token=do_create_api_token(agent),
        ids={
            "case_id": [c.pk for c in cases],
            "post_id": [pk for pks in posts.values() for pk in pks],
            "reply_id": [reply.pk],
        },
        posts_of_case=posts,
        usernames=["ana", "ben", "me", "none"],
        topics=sorted(get_brand_topics(installation.brand_id)),
        cursors={ordering: encode_cursor(cases[1], ordering, "older") for ordering in ("newest", "urgent")},
    )
    try:
        yield desk
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    # A run in which every request was refused (the token lost its access, every id a 404) would pass every
    # check while testing nothing past the front door.
    assert any(200 <= status < 300 for status in desk.answered), f"no request succeeded: {sorted(set(desk.answered))}"


def _point_at_rows(case: schemathesis.Case, desk: Desk) -> None:
    """Make a schema-valid request name rows that exist, where the schema cannot say which values do.

    Only schema-valid (positive) requests are changed, and only into other schema-valid ones, so that checks stay
    sound: an id in a path, a username, a post of the case, a topic of the brand's taxonomy are facts about the
    database that no schema can list. A choice is a hash of the request, so the run stays deterministic; one
    request in five keeps its generated path id and meets the 404 instead.
    """
    if case.meta is None or case.meta.generation.mode != schemathesis.GenerationMode.POSITIVE:
        return
    pick = zlib.crc32(repr((case.path_parameters, case.query, case.body)).encode("utf-8", "surrogatepass"))
    query = case.query if isinstance(case.query, dict) else None
    if case.operation.label == "GET /api/cases" and query and query.get("cursor") is not None:
        # A cursor is a position we signed: a generated string is refused (400) as one a client altered would be.
        # A cursor already says where the page starts, so it comes without an offset (422 with both).
        query["cursor"] = desk.cursors[str(query.get("ordering") or "newest")]
        query.pop("offset", None)
    for name in list(case.path_parameters or {}):
        if name in desk.ids and pick % 5:
            choices = desk.ids[name]
            case.path_parameters[name] = choices[pick % len(choices)]
    body = case.body if isinstance(case.body, dict) else None
    operation = case.operation.label
    if body is None:
        return
    if operation == "POST /api/cases/{case_id}/assign" and body.get("assignee") is not None:
        body["assignee"] = desk.usernames[pick % len(desk.usernames)]
    if operation == "POST /api/cases/{case_id}/replies":
        if body.get("in_reply_to") is not None:
            posts = desk.posts_of_case.get(case.path_parameters["case_id"])
            if posts:
                body["in_reply_to"] = posts[pick % len(posts)]
        # The header and the body field are two ways to send one key; both at once must agree, a rule between a
        # header and the body that OpenAPI has no way to state.
        headers = case.headers or {}
        if body.get("idempotency_key") is not None and "Idempotency-Key" in headers:
            headers["Idempotency-Key"] = body["idempotency_key"]
    if operation == "POST /api/posts/{post_id}/labels" and body.get("task") == "topic":
        body["value"] = desk.topics[pick % len(desk.topics)]


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    # The fixture's rows are made once per operation, not per example, on purpose: examples build on each other
    # (a note on a case another example assigned), as requests do.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_api_matches_its_schema(case: schemathesis.Case, desk: Desk) -> None:
    _point_at_rows(case, desk)
    response = case.call_and_validate(headers={"Authorization": f"Bearer {desk.token}"})
    desk.answered.append(response.status_code)


def test_the_schema_run_covers_every_operation() -> None:
    # A router added without response declarations, or one the loader skipped, would silently go untested.
    operations = {result.ok().label for result in SCHEMA.get_all_operations()}
    assert len(operations) == 10
    assert "POST /api/posts/{post_id}/labels" in operations
    assert "GET /api/replies/{reply_id}" in operations


def test_every_operation_documents_its_errors() -> None:
    schema = SCHEMA.raw_schema
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            codes = set(operation["responses"])
            expected = {"401", "422"} | ({"404"} if "{" in path else set())
            if "requestBody" in operation:
                expected.add("400")  # a body that is not JSON at all
            assert expected <= codes, (method, path, codes)


def test_documented_patterns_say_what_the_validators_check() -> None:
    # The patterns are documentation (the validators decide), so they must agree with them; a pattern that a
    # JSON Schema engine cannot compile is dropped by clients and by schemathesis, so none may name surrogates.
    text = re.compile(STORABLE_PATTERN)
    not_blank = re.compile(NOT_BLANK_PATTERN)
    assert text.fullmatch("any text, 好 and 😀") and not text.fullmatch("a\x00b")
    for code in range(1, 0x10000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        assert bool(not_blank.fullmatch(f" {char}\t")) == (not char.isspace()), hex(code)
    assert not not_blank.fullmatch("") and not not_blank.fullmatch("ok\x00")
    patterns = re.findall(r'"pattern": "([^"]*)"', json.dumps(SCHEMA.raw_schema))
    assert patterns and all("ud8" not in p.lower() for p in patterns), patterns
