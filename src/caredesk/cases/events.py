"""Live events, published only after commit.

Every state change writes an :class:`~caredesk.cases.models.Activity` row inside the caller's transaction and
asks :func:`publish` to announce it. The announcement is a PostgreSQL ``NOTIFY`` sent from
``transaction.on_commit``, so a rollback announces nothing, and every process (web servers, workers) on the same
database hears it. Listeners then read the Activity rows themselves: the row is the event, the notification is only
a wake-up call, and a browser that reconnects resumes from the last Activity id it saw.

Ephemeral presence ("Ana is replying") is announced the same way but has no row, and so is a change to who a user
is allowed to be (logged out, deactivated, memberships changed): open live streams of that user check again at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import connection, transaction

log = logging.getLogger(__name__)

CHANNEL = "caredesk_events"
# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; ids are sent in chunks well below that.
_MAX_IDS_PER_NOTIFY = 500


@dataclass(frozen=True, slots=True)
class Published:
    activity_ids: tuple[int, ...] = ()
    presence_case_id: int | None = None
    presence_brand_id: int | None = None
    user_id: int | None = None  # this user's sessions or rights changed


_subscribers: list[Callable[[Published], None]] = []


def subscribe(callback: Callable[[Published], None]) -> Callable[[], None]:
    """Register an in-process listener (tests, benchmarks). Returns a function that unsubscribes."""
    _subscribers.append(callback)
    return lambda: _subscribers.remove(callback)


def _notify(payloads: Iterable[str]) -> None:
    with connection.cursor() as cursor:
        for payload in payloads:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])


def _deliver(event: Published) -> None:
    if event.activity_ids:
        ids = list(event.activity_ids)
        chunks = [ids[i : i + _MAX_IDS_PER_NOTIFY] for i in range(0, len(ids), _MAX_IDS_PER_NOTIFY)]
        _notify(json.dumps({"a": chunk}) for chunk in chunks)
    if event.presence_case_id is not None:
        _notify([json.dumps({"p": event.presence_case_id, "b": event.presence_brand_id})])
    if event.user_id is not None:
        _notify([json.dumps({"u": event.user_id})])
    for callback in list(_subscribers):
        try:
            callback(event)
        except Exception:  # a faulty listener must not break the writer that already committed
            log.exception("event subscriber failed")


def publish_activities(activity_ids: Iterable[int]) -> None:
    """Announce these Activity rows once the current transaction commits."""
    event = Published(activity_ids=tuple(activity_ids))
    if event.activity_ids:
        transaction.on_commit(lambda: _deliver(event))


def publish_presence(case_id: int, brand_id: int) -> None:
    transaction.on_commit(lambda: _deliver(Published(presence_case_id=case_id, presence_brand_id=brand_id)))


def publish_user_changed(user_id: int) -> None:
    """Tell open live streams of this user to check their session and rights again (after commit)."""
    transaction.on_commit(lambda: _deliver(Published(user_id=user_id)))


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def parse_notification(payload: str) -> Published:
    data = json.loads(payload)
    if not isinstance(data, dict):
        raise ValueError("notification payload is not an object")
    return Published(
        activity_ids=tuple(int(i) for i in data.get("a", ())),
        presence_case_id=_optional_int(data.get("p")),
        presence_brand_id=_optional_int(data.get("b")),
        user_id=_optional_int(data.get("u")),
    )


def apply_activity(state: dict[str, object], kind: str, data: dict[str, object]) -> dict[str, object]:
    """Apply one activity to a client's copy of a case (``status``, ``assignee_id``, labels, counters).

    This is the contract a live client relies on: a stale copy plus the events since equals a fresh read.
    """
    state = dict(state)
    if kind in ("case_created", "case_status") and "status" in data:
        state["status"] = data["status"]
    if kind == "case_assigned":
        state["assignee_id"] = data.get("assignee_id")
        if data.get("status"):
            state["status"] = data["status"]
    if kind in ("case_labels", "post_received"):
        for key in ("topic", "priority", "sentiment", "status", "needs_reply"):
            if key in data:
                state[key] = data[key]
    if kind == "post_received":
        state["posts"] = int(state.get("posts", 0)) + 1  # type: ignore[call-overload]
    if kind == "note_added":
        state["notes"] = int(state.get("notes", 0)) + 1  # type: ignore[call-overload]
    if kind in ("reply_queued", "reply_sent", "reply_failed", "reply_unknown", "reply_discarded"):
        replies = dict(state.get("replies", {}))  # type: ignore[call-overload]
        replies[data["reply_id"]] = kind.removeprefix("reply_")
        state["replies"] = replies
        if kind == "reply_sent" and data.get("post_id"):
            state["posts"] = int(state.get("posts", 0)) + 1  # type: ignore[call-overload]  # the outbound post
        if data.get("status"):
            state["status"] = data["status"]
    return state
