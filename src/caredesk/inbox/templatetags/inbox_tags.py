"""Small display filters for the inbox templates. None of them marks anything safe: autoescape still applies."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

from caredesk.inbox.presenters import mask_detected

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
