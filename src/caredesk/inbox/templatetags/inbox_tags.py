"""Small display filters for the inbox templates. None of them marks anything safe: autoescape still applies.
The one tag, ``case_rows``, builds the list's rows and escapes every value it puts in them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from html import escape as _html_escape
from typing import TYPE_CHECKING

from django import template
from django.template.defaultfilters import slugify
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from caredesk.cases.models import Case
from caredesk.inbox.presenters import LabelChip, LabelFix, ThreadItem, mask_detected

if TYPE_CHECKING:
    from django.template import Context

    from caredesk.cases.models import Post

register = template.Library()


@register.filter
def age(value: datetime | None, now: datetime | None = None) -> str:
    """Compact age for dense lists: ``now``, ``42s``, ``5m``, ``3h``, ``2d``, ``6w``."""
    if value is None:
        return ""
    seconds = int(((now or timezone.now()) - value).total_seconds())
    if seconds < 5:
        return "now"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@register.filter
def ago(value: datetime | None, now: datetime | None = None) -> str:
    """Age for prose ("opened … "): ``just now`` under a minute (and for a time slightly in the future, from clock
    skew between machines), else the compact age with ``ago``: ``5m ago``, ``3h ago``. Templates must not append
    "ago" to :func:`age`, whose ``now`` would read "now ago"."""
    if value is None:
        return ""
    seconds = ((now or timezone.now()) - value).total_seconds()
    if seconds < 60:
        return "just now"
    return f"{age(value, now)} ago"


@register.filter
def compact_number(value: int | None) -> str:
    """1234 → 1.2k, 2500000 → 2.5M."""
    if value is None:
        return "0"
    number = int(value)
    for suffix, size in (("M", 1_000_000), ("k", 1_000)):
        if number >= size:
            text = f"{number / size:.1f}".removesuffix(".0")
            return f"{text}{suffix}"
    return str(number)


@register.filter
def percent(value: float | None) -> str:
    return "" if value is None else f"{round(float(value) * 100)}%"


@register.filter
def initials(value: str | None) -> str:
    words = [w for w in str(value or "").replace("_", " ").replace(".", " ").split() if w]
    if not words:
        return "?"
    return "".join(w[0] for w in words[:2]).upper()


@register.filter
def http_url(value: str | None) -> str:
    """The URL if it is http(s), else empty: a connector-supplied link must never become ``javascript:``."""
    url = str(value or "").strip()
    return url if url.lower().startswith(("https://", "http://")) else ""


@register.filter
def mask_pii(value: str | None) -> str:
    """Mask personal data found in ``value`` (for texts without stored PII spans, like case subjects)."""
    return mask_detected(str(value or ""))


@register.simple_tag
def case_rows(cases: list[Case], open_case_id: int | None, query: str, now: datetime) -> SafeString:
    """The case list's rows. Written here rather than as a template loop: at a hundred rows the loop's thirty
    template nodes a row were half of an inbox page's time (and ``format_html`` a call per value, most of the
    rest). Every value goes through ``escape`` (``html.escape`` with quotes); the subject is PII-masked as
    detected now, as the ``mask_pii`` filter does."""
    if not cases:
        return mark_safe('  <li class="rows-empty">Nothing here. Inbox zero.</li>\n')  # noqa: S308 - a constant
    suffix = escape(f"?{query}") if query else ""
    return mark_safe("".join(_row(c, open_case_id, suffix, now) for c in cases))  # noqa: S308 - escaped above


def escape(value: object) -> str:
    """What Django's ``escape`` does (``& < > " '``), without its lazy-string wrapper: a row calls it twenty times."""
    return _html_escape(str(value), quote=True)


# What get_status_display / get_priority_display answer, looked up without their per-call hashing of the choices.
_STATUS_LABELS: dict[str, str] = {value: str(label) for value, label in Case.Status.choices}
_PRIORITY_LABELS: dict[int, str] = {value: str(label) for value, label in Case.Priority.choices}


@lru_cache(maxsize=64)
def _platform_slug(platform: str) -> str:
    """slugify of a platform's name: a handful of names, each slugified once."""
    return slugify(platform)


def _row(c: Case, open_case_id: int | None, suffix: str, now: datetime) -> str:
    e = escape
    url = e(getattr(c, "pane_url", "")) + suffix
    platform = getattr(c, "platform", None) or ""
    resolved = c.status == "resolved"
    if c.assignee is not None:
        name = c.assignee.get_username()
        assignee = f'<span class="avatar avatar--xs">{e(initials(name))}</span>{e(name)}'
    else:
        assignee = '<span class="muted">unassigned</span>'
    platform_chip = (f'<span class="platform platform--{e(_platform_slug(platform))}">{e(platform)}</span>'
                     if platform else "")
    topic = f'<span class="chip">{e(c.topic)}</span>' if c.topic else ""
    sentiment = f'<span class="chip chip--{e(c.sentiment)}">{e(c.sentiment)}</span>' if c.sentiment else ""
    needs = '<span class="chip chip--warn" title="needs a reply">↩</span>' if c.needs_reply and not resolved else ""
    posted = c.last_inbound_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")  # the title says UTC
    state = (" is-open" if c.pk == open_case_id else "") + (" is-resolved" if resolved else "")
    classes = f"row prio-{e(c.priority)}{state}"
    return f"""  <li>
    <a class="{classes}" id="case-row-{e(c.pk)}" data-case-id="{e(c.pk)}"
       href="{url}"
       hx-get="{url}" hx-target="#case-pane" hx-swap="innerHTML" hx-push-url="true">
      <div class="row-top">
        <span class="row-handle">@{e(getattr(c, "handle", None) or "unknown")}</span>
        {platform_chip}
        <span class="row-brand">{e(c.brand.name)}</span>
        <span class="row-age" title="last customer post {e(posted)} UTC">{e(age(c.last_inbound_at, now))}</span>
      </div>
      <div class="row-subject">{e(mask_detected(c.subject) or "(no text)")}</div>
      <div class="row-chips">
        <span class="status status--{e(c.status)}">{e(_STATUS_LABELS.get(c.status, c.status))}</span>
        <span class="prio prio--{e(c.priority)}">{e(_PRIORITY_LABELS.get(c.priority, c.priority))}</span>
        {topic}
        {sentiment}
        {needs}
        <span class="row-assignee">{assignee}</span>
      </div>
    </a>
  </li>
"""


_CENT = Decimal("0.01")


def two_places(value: float) -> str:
    """``floatformat:2`` of a float for this site's language (``.`` as the decimal point, no grouping below 1,000):
    the same rounding (half up, of the float's shortest repr) without the locale machinery of each call."""
    return str(Decimal(repr(float(value))).quantize(_CENT, ROUND_HALF_UP))


@register.simple_tag(takes_context=True)
def post_labels(context: Context, item: ThreadItem, post: Post) -> SafeString:
    """A customer post's label chips, the reasons behind them and the correction selects (``<details
    class="labels">``). Written here rather than as template loops: a post has six chips and six selects of up to
    a few dozen options, and a thread of them made the template's nodes (and two ``{% url %}`` per select) most of
    the case pane's time. One ``reverse`` per post; every value goes through ``escape``."""
    if not item.chips:
        return mark_safe("")
    e = escape
    summary = "".join(_chip(chip) for chip in item.chips)
    reasons = "".join(_reason(chip) for chip in item.chips)
    fixes = ""
    if item.fixes:
        url = e(reverse("inbox:post-labels", args=(post.case_id, post.pk)))
        token = context.get("csrf_token")
        csrf = (f'<input type="hidden" name="csrfmiddlewaretoken" value="{e(token)}">'
                if token and token != "NOTPROVIDED" else "")  # noqa: S105 - csrf_token's marker
        forms = "".join(_fix(fix, url, e(post.pk), csrf) for fix in item.fixes)
        fixes = f"""
    <div class="label-fixes" aria-label="Correct the labels">
      <span class="label-fixes-title">Correct:</span>
      {forms}
    </div>
    """
    is_open = " open" if context.get("labels_open") else ""
    return mark_safe(  # noqa: S308 - every value escaped above
        f"""<details class="labels"{is_open}>
    <summary>
      {summary}
      <span class="labels-why">why?</span>
    </summary>
    <dl class="reasons">
      {reasons}
    </dl>
    {fixes}
  </details>
  """
    )


def _chip(chip: LabelChip) -> str:
    e = escape
    corrected = " chip--corrected" if chip.corrected_by else ""
    if chip.corrected_by:
        title, small = f" · corrected by {e(chip.corrected_by)}", f" <small>✎ {e(chip.corrected_by)}</small>"
    elif chip.score is not None:
        title, small = f" · score {two_places(chip.score)}", f" <small>{e(percent(chip.score))}</small>"
    else:
        title = small = ""
    return (f'<span class="chip chip--{e(chip.tone)}{corrected}" title="{e(chip.name)}{title}">'
            f"{e(chip.value)}{small}</span>")


def _reason(chip: LabelChip) -> str:
    e = escape
    score = f" ({two_places(chip.score)})" if chip.score is not None else ""
    reasons = ("".join(f'<span class="reason">{e(r)}</span>' for r in chip.reasons)
               or '<span class="muted">no reasons given</span>')
    return f"""
        <dt>{e(chip.name)}: {e(chip.value)}{score}</dt>
        <dd>{reasons}</dd>
      """


def _fix(fix: LabelFix, url: str, post_pk: str, csrf: str) -> str:
    e = escape
    task = e(fix.task)
    blank = "" if fix.current else '<option value="" selected disabled>—</option>'
    options = "".join(f'<option value="{e(value)}"{" selected" if value == fix.current else ""}>{e(text)}</option>'
                      for value, text in fix.options)
    corrected = (f'<span class="corrected" title="set by hand">corrected by {e(fix.corrected_by)}</span>'
                 if fix.corrected_by else "")
    return f"""
      <form method="post" class="label-fix" action="{url}" hx-post="{url}" hx-trigger="change" \
hx-target="#post-{post_pk}" hx-swap="outerHTML">
        {csrf}<input type="hidden" name="task" value="{task}">
        <label>{e(fix.name)}
          <select name="value" data-label-task="{task}">
            {blank}
            {options}
          </select>
        </label>
        {corrected}
        <noscript><button type="submit" class="btn btn--xs">Save</button></noscript>
      </form>
      """
