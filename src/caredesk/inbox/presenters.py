"""Reads for the inbox pages: the case list query, the case pane's thread and labels, PII masking for display.

Everything here is a ``get_*`` read or a pure function; writes live in the actions modules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import JSONObject
from django.urls import reverse

from caredesk.accounts.models import Brand
from caredesk.cases.access import CaseNotFound, access_case, brand_people, visible_brand_ids
from caredesk.cases.models import Activity, Author, Case, Note, Post
from caredesk.cases.paging import BadCursor, KeysetPage, Tally, bounded_counts, decode_cursor, keyset_page
from caredesk.cases.queries import CaseQuery, filter_cases, queue_querysets
from caredesk.connectors.base import ConnectorError, ReplyRules
from caredesk.connectors.registry import get_provider_class
from caredesk.inbox.actions import get_presence
from caredesk.inbox.forms import Queue, Sort, StatusFilter
from caredesk.inbox.models import CannedReply, CasePresence
from caredesk.inbox.stream import HORIZON_SQL, format_position
from caredesk.outbox.actions import ReplyError, check_can_reply, reply_rules_for
from caredesk.outbox.models import Reply
from caredesk.triage import DEFAULT_TOPICS, detect_pii, mask_pii
from caredesk.triage.models import Task, get_brand_topics, label_as_text
from caredesk.triage.types import PIIMatch
from caredesk.triage.vocabulary import BINARY_TASKS, SENTIMENTS, TASK_NAMES

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Cases a page of the inbox list. 50, not 100: the list column shows 15 to 20 rows at a time, so 50 is two to three
# screens (care desks commonly show 25 to 50), and "older ›" is a keyset page that costs what the first one does.
# At 100 the rows were about a third of an inbox page's time on the 10 M-post database (docs/benchmarks.md).
PAGE_SIZE = 50
EARLIER_CASES = 10
TIMELINE_LENGTH = 100
# The thread shows its latest entries; a case that grew huge (a viral post) offers its earlier ones on request.
THREAD_LENGTH = 200

PII_LABELS = {
    "account_number": "account number",
    "phone": "phone number",
    "email": "email address",
    "address": "address",
    "card": "card number",
}


# ---------------------------------------------------------------------------------------------------------------
# PII masking


def _valid_spans(text: str, pii: Any) -> list[tuple[str, int, int]]:
    spans: list[tuple[str, int, int]] = []
    if not isinstance(pii, list):
        return spans
    for item in pii:
        if not isinstance(item, Mapping):
            continue
        start, end, kind = item.get("start"), item.get("end"), item.get("kind")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text):
            spans.append((str(kind or "pii"), start, end))
    return spans


def mask_for_display(text: str, triage: Mapping[str, Any] | None) -> tuple[str, list[str]]:
    """The text with the PII spans that triage stored masked (``[account number ••42]``), and the kinds found
    (for the warning chip). Spans that do not fit the text are ignored rather than trusted."""
    spans = _valid_spans(text, (triage or {}).get("pii"))
    if not spans:
        return text, []
    masked = mask_pii(text, [PIIMatch(kind, start, end) for kind, start, end in spans])
    return masked, sorted({kind for kind, _, _ in spans})


def mask_detected(text: str) -> str:
    """``text`` with personal data masked as detected now, for strings without stored spans (case subjects)."""
    found = detect_pii(text)
    return mask_pii(text, found) if found else text


def pii_warning(kinds: Iterable[str]) -> str:
    names = [PII_LABELS.get(k, k.replace("_", " ")) for k in kinds]
    if not names:
        return ""
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"contains {joined} — suggest moving to DM"


# ---------------------------------------------------------------------------------------------------------------
# Triage labels


@dataclass(frozen=True, slots=True)
class LabelChip:
    name: str
    value: str
    score: float | None
    reasons: tuple[str, ...]
    tone: str  # css modifier: neutral, good, bad, warn
    corrected_by: str = ""  # the agent who set this label by hand, if one did


@dataclass(frozen=True, slots=True)
class LabelFix:
    """One label of a post that an agent may correct: a small select with the current value chosen."""

    task: str
    name: str
    options: tuple[tuple[str, str], ...]  # (value, text)
    current: str
    corrected_by: str = ""


def _label(triage: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = triage.get(key)
    return value if isinstance(value, Mapping) else None


def _score(label: Mapping[str, Any]) -> float | None:
    score = label.get("score")
    return float(score) if isinstance(score, int | float) else None


def _reasons(label: Mapping[str, Any]) -> tuple[str, ...]:
    reasons = label.get("reasons")
    return tuple(str(r) for r in reasons) if isinstance(reasons, list | tuple) else ()


def _corrected_by(label: Mapping[str, Any]) -> str:
    who = label.get("corrected_by")
    return str(who) if who else ""


def triage_chips(triage: Mapping[str, Any] | None) -> list[LabelChip]:
    """One chip per triage decision of a post, with its score and the reasons that decided it."""
    if not triage:
        return []
    chips: list[LabelChip] = []
    topic = _label(triage, "topic")
    if topic is not None:
        chips.append(LabelChip("topic", str(topic.get("value") or "—"), _score(topic), _reasons(topic), "neutral",
                               _corrected_by(topic)))
    sentiment = _label(triage, "sentiment")
    if sentiment is not None:
        value = str(sentiment.get("value") or "")
        tone = {"negative": "bad", "positive": "good"}.get(value, "neutral")
        chips.append(LabelChip("sentiment", value, _score(sentiment), _reasons(sentiment), tone,
                               _corrected_by(sentiment)))
    urgency = _label(triage, "urgency")
    if urgency is not None:
        raw = urgency.get("value")
        level = float(raw) if isinstance(raw, int | float) else 0.0
        tone = "bad" if level >= 0.7 else "warn" if level >= 0.4 else "neutral"
        chips.append(LabelChip("urgency", f"urgency {level:.2f}", _score(urgency), _reasons(urgency), tone))
    for key, yes in (("complaint", "complaint"), ("needs_reply", "needs reply"), ("spam", "spam")):
        label = _label(triage, key)
        if label is None:
            continue
        flag = bool(label.get("value"))
        if key == "spam" and not flag:
            continue
        tone = "bad" if key == "spam" else "warn" if flag else "neutral"
        chips.append(LabelChip(key.replace("_", " "), yes if flag else f"no {yes}", _score(label), _reasons(label),
                               tone, _corrected_by(label)))
    return chips


_YES_NO = (("true", "yes"), ("false", "no"))
FIX_NAMES = TASK_NAMES


def label_fixes(triage: Mapping[str, Any] | None, topics: Sequence[str]) -> list[LabelFix]:
    """The correction selects of a post, in the order agents read the labels. ``topics``: the brand's topic keys."""
    if not triage:
        return []
    fixes: list[LabelFix] = []
    for task in Task.values:
        label = _label(triage, task) or {}
        current = label_as_text(label.get("value"))
        options: tuple[tuple[str, str], ...]
        if task in BINARY_TASKS:
            options = _YES_NO
        elif task == Task.SENTIMENT:
            options = tuple((s, s) for s in SENTIMENTS)
        else:
            options = tuple((key, DEFAULT_TOPICS[key][0] if key in DEFAULT_TOPICS else key) for key in topics)
        if current and current not in {value for value, _ in options}:
            options = ((current, f"{current} (not offered)"), *options)
        fixes.append(LabelFix(task, FIX_NAMES.get(task, task), options, current, _corrected_by(label)))
    return fixes


# ---------------------------------------------------------------------------------------------------------------
# The case list


@dataclass
class CaseListResult:
    page: KeysetPage
    counts: dict[str, Tally]
    total: Tally
    # Why the requested page could not be shown (a cursor that is not ours); the first page is shown instead.
    cursor_error: str = ""


def _case_query(filters: Mapping[str, Any]) -> CaseQuery:
    """The inbox's filter form, as the shared case-list query."""
    queue = filters["queue"]
    status = filters["status"]
    statuses: tuple[str, ...] = ()
    if status == StatusFilter.ACTIVE:
        statuses = tuple(Case.OPEN_STATUSES)
    elif status != StatusFilter.ANY:
        statuses = (status,)
    return CaseQuery(
        statuses=statuses,
        topic=filters["topic"] or None,
        priority=filters["priority"] or None,
        assignee="none" if queue == Queue.UNASSIGNED else "me" if queue == Queue.MINE else None,
        brand_id=filters["brand"] or None,
        needs_reply=True if filters["needs_reply"] else None,
        ordering="urgent" if filters["sort"] == Sort.URGENT else "newest",
    )


def case_list_queryset(filters: Mapping[str, Any], user: User) -> QuerySet[Case]:
    latest_inbound = Post.objects.filter(case=OuterRef("pk"), direction=Post.Direction.INBOUND).order_by(
        "-created_at", "-pk"
    )
    return (
        filter_cases(user, _case_query(filters))
        .select_related("assignee", "brand")
        # One subquery for both (a JSON pair), not one each: each is an index probe into the posts table per row.
        .annotate(latest_author=Subquery(
            latest_inbound.values(pair=JSONObject(handle="author__handle", platform="author__platform"))[:1]
        ))
    )


ROW_FIELDS = (
    "id", "subject", "status", "priority", "urgency", "topic", "sentiment", "needs_reply", "last_inbound_at",
    "brand__name", "assignee__username",
)


def get_case_list(filters: Mapping[str, Any], user: User) -> CaseListResult:
    """A page of the list by keyset (``filters["cursor"]``: older or newer than a row), the queue counts and the
    list's total, both exact up to a thousand and estimated beyond (:mod:`caredesk.cases.paging`)."""
    cases = case_list_queryset(filters, user)
    ordering = "urgent" if filters["sort"] == Sort.URGENT else "newest"
    cursor, error = None, ""
    if filters.get("cursor"):
        try:
            cursor = decode_cursor(filters["cursor"], ordering)
        except BadCursor:
            error = "That page link no longer fits this list; here are its first cases."
    # Only the columns a row shows and the cursor's sort keys: a full Case, User and Brand a row made building the
    # hundred model instances (and parsing their timestamps) a tenth of the page's time.
    page = keyset_page(cases.only(*ROW_FIELDS), ordering, PAGE_SIZE, cursor)
    # One reverse() for the page, not two per row (at a hundred rows, URL resolutions were a fifth of the list's time).
    marker = 987654321
    pattern = reverse("inbox:case", args=[marker])
    for case in page.items:
        case.pane_url = pattern.replace(str(marker), str(case.pk))  # type: ignore[attr-defined]
        author = getattr(case, "latest_author", None) or {}
        case.handle, case.platform = author.get("handle"), author.get("platform")  # type: ignore[attr-defined]
    counts = bounded_counts({**queue_querysets(user, filters.get("brand")), "total": cases})  # one query
    total = counts.pop("total")
    return CaseListResult(page=page, counts=counts, total=total, cursor_error=error)


def get_stream_cursor() -> str:
    """The live stream's position of "now", taken before the page reads anything: the page shows every event
    below it, and the stream delivers every event from it (some twice, which a page's refresh absorbs)."""
    with connection.cursor() as cursor:
        cursor.execute(HORIZON_SQL)
        (horizon,) = cursor.fetchone()
    return format_position((int(horizon), 0))


def get_filter_choices(user: User) -> dict[str, Any]:
    brands = Brand.objects.order_by("name")
    visible = visible_brand_ids(user)
    if visible is not None:
        brands = brands.filter(pk__in=visible)
    return {"brands": list(brands.values_list("pk", "name")), "topics": get_topics(visible)}


# ---------------------------------------------------------------------------------------------------------------
# The case pane


@dataclass
class ThreadItem:
    """One entry of a case thread, in time order. ``kind`` picks the template: post, reply, note or event."""

    kind: str
    at: datetime
    post: Post | None = None
    reply: Reply | None = None
    note: Note | None = None
    activity: Activity | None = None
    text: str = ""
    pii_kinds: list[str] = field(default_factory=list)
    chips: list[LabelChip] = field(default_factory=list)
    fixes: list[LabelFix] = field(default_factory=list)
    event_text: str = ""

    @property
    def pii_warning(self) -> str:
        return pii_warning(self.pii_kinds)


@dataclass
class Composer:
    """What the reply box needs; built once per render of the box."""

    platform: str
    limit: int
    unit: str
    in_reply_to: Post | None
    canned: list[CannedReply]
    # Why no reply can be sent from here (a post that came through a file import), shown before anyone types.
    refusal: str = ""
    # Where the agent can answer on the platform itself instead (a keyword-only match on X): the post's own page.
    open_url: str = ""
    platform_name: str = ""

    @property
    def canned_texts(self) -> dict[str, str]:
        """For the page's JSON (``json_script``): canned reply id → text."""
        return {str(c.pk): c.text for c in self.canned}


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    activity: Activity
    text: str


@dataclass
class CaseView:
    case: Case
    thread: list[ThreadItem]
    author: Author | None
    other_authors: list[Author]
    earlier_cases: list[Case]
    presence: list[CasePresence]
    timeline: list[TimelineEntry]
    agents: list[User]
    topics: list[str]
    pii_kinds: list[str]
    earlier_hidden: bool = False  # the thread shows only its latest THREAD_LENGTH entries
    whole_thread: bool = False

    @property
    def pii_warning(self) -> str:
        return pii_warning(self.pii_kinds)


def describe_activity(activity: Activity) -> str:
    """A short line for the timeline. Values come from our own actions, but are escaped by the template anyway."""
    data = activity.data if isinstance(activity.data, Mapping) else {}
    kind = activity.kind
    if kind == Activity.Kind.CASE_ASSIGNED:
        who = data.get("assignee")
        if who and activity.actor_id is not None and data.get("assignee_id") == activity.actor_id:
            return "took the case"
        return f"assigned to {who}" if who else "unassigned"
    if kind == Activity.Kind.CASE_STATUS:
        text = f"status → {data.get('status', '?')}"
        return f"{text} ({data['reason']})" if data.get("reason") else text
    if kind == Activity.Kind.CASE_LABELS:
        parts = []
        for key, value in data.items():
            if key == "priority" and isinstance(value, int) and value in Case.Priority.values:
                value = Case.Priority(value).label
            parts.append(f"{key} → {value}")
        return "labels: " + ", ".join(parts) if parts else "labels changed"
    if kind == Activity.Kind.LABEL_CORRECTED:
        task = str(data.get("task", "?"))
        name = FIX_NAMES.get(task, task).lower()
        shown = {"true": "yes", "false": "no"}
        before, after = str(data.get("previous") or "—"), str(data.get("value", "?"))
        return f"corrected {name}: {shown.get(before, before)} → {shown.get(after, after)}"
    if kind == Activity.Kind.CASE_CREATED:
        return "case opened"
    if kind == Activity.Kind.POST_RECEIVED:
        return "post received" if data.get("direction") != Post.Direction.OUTBOUND else "our post seen on platform"
    if kind == Activity.Kind.NOTE_ADDED:
        return "internal note added"
    if kind == Activity.Kind.REPLY_QUEUED:
        return "reply queued again" if data.get("retry") else "reply queued"
    if kind == Activity.Kind.REPLY_SENT:
        return "reply confirmed posted by an agent" if data.get("confirmed") else "reply sent"
    if kind == Activity.Kind.REPLY_FAILED:
        return "reply failed"
    if kind == Activity.Kind.REPLY_UNKNOWN:
        return "reply delivery unknown: an agent must check the platform"
    if kind == Activity.Kind.REPLY_DISCARDED:
        return "reply discarded"
    if kind == Activity.Kind.POST_EDITED:
        return "a post was edited on the platform (the thread shows the new text)"
    if kind == Activity.Kind.POST_DELETED:
        return "a post was deleted on the platform; its text is removed here too"
    return kind.replace("_", " ")


# Shown inline in the thread; the rest is visible in the timeline and would only repeat the thread.
THREAD_EVENT_KINDS = {Activity.Kind.CASE_ASSIGNED, Activity.Kind.CASE_STATUS, Activity.Kind.CASE_LABELS}


def get_case(user: User, case_id: int) -> Case | None:
    """The case if ``user`` may see it (see :mod:`caredesk.cases.access`), else None."""
    try:
        return access_case(user, case_id)
    except CaseNotFound:
        return None


def _latest(rows: QuerySet[Any], limit: int | None) -> tuple[list[Any], bool]:
    """Up to ``limit`` latest rows in time order (all with None), and whether earlier ones were left out."""
    if limit is None:
        return list(rows.order_by("created_at", "pk")), False
    latest = list(rows.order_by("-created_at", "-pk")[: limit + 1])
    return list(reversed(latest[:limit])), len(latest) > limit


def get_thread(case: Case, activities: Sequence[Activity],
               limit: int | None = None) -> tuple[list[ThreadItem], list[Post], bool]:
    """The thread in time order: its latest ``limit`` entries (None: all), and whether earlier ones are hidden."""
    posts, more_posts = _latest(case.posts.select_related("author"), limit)
    replies, more_replies = _latest(case.replies.select_related("author"), limit)
    notes, more_notes = _latest(case.notes.select_related("author"), limit)
    reply_post_ids = {r.post_id for r in replies if r.post_id}
    topics = get_brand_topics(case.brand_id)
    items: list[ThreadItem] = []
    for post in posts:
        if post.pk in reply_post_ids:
            continue  # shown as our reply, with its delivery state
        items.append(post_item(post, topics))
    for reply in replies:
        items.append(ThreadItem(kind="reply", at=reply.sent_at or reply.created_at, reply=reply, text=reply.text))
    for note in notes:
        items.append(ThreadItem(kind="note", at=note.created_at, note=note, text=note.text))
    for activity in activities:
        if activity.kind in THREAD_EVENT_KINDS:
            items.append(ThreadItem(kind="event", at=activity.created_at, activity=activity,
                                    event_text=describe_activity(activity)))
    order = {"post": 0, "reply": 1, "note": 2, "event": 3}
    items.sort(key=lambda item: (item.at, order[item.kind]))
    # Each kind was cut at its own point: what is older than the latest of those cuts is dropped too, so the
    # thread shown has no gap in it; then the latest ``limit`` entries of the rest.
    cuts = [rows[0].created_at for rows, more in ((posts, more_posts), (replies, more_replies), (notes, more_notes))
            if more and rows]
    hidden = bool(cuts)
    if cuts:
        items = [item for item in items if item.at >= max(cuts)]
    if limit is not None and len(items) > limit:
        items, hidden = items[-limit:], True
    return items, posts, hidden


def post_item(post: Post, topics: Sequence[str]) -> ThreadItem:
    """A post as the thread shows it: masked text, label chips and, for customer posts, the correction selects."""
    text, kinds = mask_for_display(post.text, post.triage)
    inbound = post.direction == Post.Direction.INBOUND
    return ThreadItem(
        kind="post", at=post.created_at, post=post, text=text, pii_kinds=kinds,
        chips=triage_chips(post.triage) if inbound else [],
        fixes=label_fixes(post.triage, topics) if inbound else [],
    )


def get_thread_post(case: Case, post_id: int) -> ThreadItem | None:
    """One post of the case's thread (for re-rendering it alone), or None when the case has no such post."""
    post = case.posts.select_related("author").filter(pk=post_id).first()
    return post_item(post, get_brand_topics(case.brand_id)) if post is not None else None


def get_case_view(case: Case, user: User, now: datetime, whole_thread: bool = False) -> CaseView:
    activities = list(case.activities.select_related("actor").order_by("-id")[:TIMELINE_LENGTH])
    thread, posts, earlier_hidden = get_thread(case, sorted(activities, key=lambda a: a.pk),
                                               None if whole_thread else THREAD_LENGTH)
    inbound = [p for p in posts if p.direction == Post.Direction.INBOUND]
    author = inbound[-1].author if inbound else None
    other_authors = [a for a in Author.objects.filter(customer_id=case.customer_id).order_by("platform", "handle")
                     if author is None or a.pk != author.pk]
    earlier = list(
        Case.objects.filter(customer_id=case.customer_id).exclude(pk=case.pk).order_by("-created_at")[:EARLIER_CASES]
    )
    return CaseView(
        case=case,
        thread=thread,
        author=author,
        other_authors=other_authors,
        earlier_cases=earlier,
        presence=get_presence(case, now, exclude=user),
        timeline=[TimelineEntry(a, describe_activity(a)) for a in activities],
        agents=get_agents(case.brand_id),
        topics=sorted({*get_topics(frozenset({case.brand_id})), case.topic} - {""}),
        pii_kinds=sorted({kind for item in thread for kind in item.pii_kinds}),
        earlier_hidden=earlier_hidden,
        whole_thread=whole_thread,
    )


def get_topics(brand_ids: frozenset[int] | None) -> list[str]:
    """Topics to offer someone who sees ``brand_ids`` (None: every brand): the triage taxonomy, plus every topic
    already on a case of those brands (one brand's own topic names are not shown to another brand's people)."""
    known: set[str] = {str(key) for key in DEFAULT_TOPICS}
    known.update(topics_in_use(brand_ids))
    return sorted(known)


# A loose index scan per brand: each step asks the (brand, topic) index for the brand's next topic above the last
# one, so listing the topics in use costs one index probe per topic, not a read of every case (DISTINCT reads all).
_TOPICS_IN_USE = """
WITH RECURSIVE found(brand_id, topic) AS (
    SELECT b, (SELECT topic FROM {table} WHERE brand_id = b AND topic > '' ORDER BY topic LIMIT 1)
    FROM unnest(%s::bigint[]) AS b
    UNION ALL
    SELECT found.brand_id,
           (SELECT c.topic FROM {table} c WHERE c.brand_id = found.brand_id AND c.topic > found.topic
            ORDER BY c.topic LIMIT 1)
    FROM found WHERE found.topic IS NOT NULL
)
SELECT DISTINCT topic FROM found WHERE topic IS NOT NULL ORDER BY topic
"""


def topics_in_use(brand_ids: frozenset[int] | None) -> list[str]:
    """Every non-empty topic some case of these brands carries (None: every brand), sorted."""
    brands = sorted(brand_ids) if brand_ids is not None else list(Brand.objects.values_list("pk", flat=True))
    if not brands:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_TOPICS_IN_USE.format(table=connection.ops.quote_name(Case._meta.db_table)), [brands])
        return [row[0] for row in cursor.fetchall()]


def get_agent(user_id: int) -> User | None:
    return get_user_model().objects.filter(pk=user_id, is_active=True).first()


def get_agents(brand_id: int) -> list[User]:
    """The people a case of this brand can be assigned to."""
    return list(brand_people(frozenset({brand_id})))


def latest_inbound_post(case: Case) -> Post | None:
    return (
        case.posts.filter(direction=Post.Direction.INBOUND, deleted_at__isnull=True)
        .select_related("author", "installation")
        .order_by("-created_at", "-pk")
        .first()
    )


def get_composer(case: Case) -> Composer:
    post = latest_inbound_post(case)
    platform = post.author.platform if post else ""
    canned = list(CannedReply.objects.filter(Q(brand=case.brand_id) | Q(brand__isnull=True)).order_by("title"))
    refusal, limit, unit, open_url = "", 0, "characters", ""
    if post is not None:
        try:
            check_can_reply(post)
            rules = reply_rules_for(post)
        except ReplyError as exc:
            refusal = str(exc)
        else:
            limit, unit = rules.max_length, rules.unit
            if post.is_direct and rules.direct_max_length is not None:
                limit, unit = rules.direct_max_length, "characters"  # a DM's own limit (X: 10,000)
            # Said as soon as the case opens, not after the agent has written the reply.
            refusal = _unsummoned_refusal(post, rules)
            if refusal and _web_url(post.url):
                open_url = post.url
    return Composer(platform=platform, limit=limit, unit=unit, in_reply_to=post, canned=canned, refusal=refusal,
                    open_url=open_url, platform_name=_platform_name(post))


def _web_url(url: str) -> bool:
    # A post's url comes from the platform's payload: only an http(s) link may become a link here.
    return url.startswith(("https://", "http://")) and len(url) < 2000


def _platform_name(post: Post | None) -> str:
    if post is None:
        return ""
    try:
        return get_provider_class(post.installation.provider_key).display_name
    except ConnectorError:
        return post.author.platform


def _unsummoned_refusal(post: Post, rules: ReplyRules) -> str:
    problem = rules.problem("x", direct=post.is_direct, summoned=post.summoned)
    return f"{post.author.platform}: {problem}" if problem else ""
