"""The filtered stream's rules (``/2/tweets/search/stream/rules``, app bearer token), kept equal to the keyword
queries of :mod:`caredesk.connectors.builtin.x.search`.

A project's rules are shared by every app and installation using its bearer token, so each rule caredesk makes is
tagged ``caredesk:<brand user id>:<hash of its value>`` and only such rules of this brand are ever deleted; the
others are counted against the project's limit (1,000 rules for self-serve access) and left alone."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from caredesk.connectors.base import Refused, Transient
from caredesk.connectors.builtin.x.api import Call, Conversation, json_of

RULES_PATH = "/2/tweets/search/stream/rules"
TAG_PREFIX = "caredesk:"
MAX_RULES = 1000
CHUNK = 100  # rules per add request
MAX_LIST_PAGES = 20


def tag_prefix(user_id: str) -> str:
    return f"{TAG_PREFIX}{user_id}:"


@dataclass(frozen=True, slots=True)
class RulesSync:
    added: tuple[str, ...]  # values
    deleted: tuple[str, ...]  # rule ids
    kept: int


def _rules_of(body: Any) -> list[Mapping[str, Any]]:
    data = body.get("data") if isinstance(body, Mapping) else None
    return [r for r in data if isinstance(r, Mapping) and isinstance(r.get("id"), str)] \
        if isinstance(data, list) else []


def _errors(body: Any) -> str:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if not isinstance(errors, list) or not errors:
        return ""
    parts = []
    for error in errors[:3]:
        if isinstance(error, Mapping):
            detail = error.get("title") or error.get("detail") or error.get("message")
            value = error.get("value")
            parts.append(f"{detail}" + (f" ({str(value)[:80]!r})" if value else ""))
    return "; ".join(parts)


def sync_rules(wanted: Mapping[str, str], prefix: str, max_rules: int = MAX_RULES) -> Conversation[RulesSync]:
    """Make this brand's rules (tag starts with ``prefix``) exactly ``wanted`` (tag → value): list, delete the
    stale ones, add the missing ones. Refused when the project's rule limit or X's validation says no."""
    existing: list[Mapping[str, Any]] = []
    params: dict[str, Any] = {"max_results": 1000}
    for _ in range(MAX_LIST_PAGES):
        response = yield Call("GET", RULES_PATH, "list the filtered-stream rules", params=dict(params))
        body = json_of(response, "list the filtered-stream rules")
        existing.extend(_rules_of(body))
        meta = body.get("meta") if isinstance(body, Mapping) else None
        token = meta.get("next_token") if isinstance(meta, Mapping) else None
        if not isinstance(token, str) or not token:
            break
        params["pagination_token"] = token
    else:
        raise Transient("X's list of filtered-stream rules did not end")
    ours = [r for r in existing if isinstance(r.get("tag"), str) and str(r["tag"]).startswith(prefix)]
    kept = {str(r["tag"]) for r in ours if wanted.get(str(r["tag"])) == r.get("value")}
    stale = [str(r["id"]) for r in ours if str(r["tag"]) not in kept or r.get("value") != wanted.get(str(r["tag"]))]
    missing = [(tag, value) for tag, value in wanted.items() if tag not in kept]
    others = len(existing) - len(ours)
    if others + len(kept) + len(missing) > max_rules:
        raise Refused(f"X allows {max_rules} filtered-stream rules per project; {others} belong to others and "
                      f"these keywords need {len(kept) + len(missing)}: use fewer keywords")
    if stale:
        response = yield Call("POST", RULES_PATH, "delete old filtered-stream rules", json={"delete": {"ids": stale}})
        problem = _errors(json_of(response, "delete old filtered-stream rules"))
        if problem:
            raise Transient(f"X did not delete old filtered-stream rules: {problem}")
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start : start + CHUNK]
        response = yield Call("POST", RULES_PATH, "add filtered-stream rules",
                              json={"add": [{"value": value, "tag": tag} for tag, value in chunk]})
        body = json_of(response, "add filtered-stream rules")
        problem = _errors(body)
        meta = body.get("meta") if isinstance(body, Mapping) else None
        summary = meta.get("summary") if isinstance(meta, Mapping) else None
        invalid = summary.get("invalid") if isinstance(summary, Mapping) else 0
        if problem or (isinstance(invalid, int) and invalid > 0):
            raise Refused(f"X refused a filtered-stream rule: {problem or f'{invalid} invalid'}")
    return RulesSync(added=tuple(v for _, v in missing), deleted=tuple(stale), kept=len(kept))
