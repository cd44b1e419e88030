"""Parsing of the inbox's query strings and form posts. Validation of business rules stays in the actions."""

from __future__ import annotations

from typing import Any

from django import forms

from caredesk.cases.models import Case
from caredesk.inbox.models import CasePresence
from caredesk.triage.models import Task


class Queue:
    UNASSIGNED = "unassigned"
    MINE = "mine"
    ALL = "all"
    CHOICES = [(UNASSIGNED, "Unassigned"), (MINE, "Mine"), (ALL, "All")]


class StatusFilter:
    ACTIVE = "active"  # new, open and pending: everything not resolved
    ANY = "any"
    CHOICES = [
        (ACTIVE, "Active"),
        (Case.Status.NEW, "New"),
        (Case.Status.OPEN, "Open"),
        (Case.Status.PENDING, "Pending"),
        (Case.Status.RESOLVED, "Resolved"),
        (ANY, "Any status"),
    ]


class Sort:
    NEWEST = "newest"
    URGENT = "urgent"
    CHOICES = [(NEWEST, "Newest"), (URGENT, "Most urgent")]


class CaseFilterForm(forms.Form):
    """The case list's filters. Invalid values fall back to the defaults instead of failing the page."""

    queue = forms.ChoiceField(choices=Queue.CHOICES, required=False)
    status = forms.ChoiceField(choices=StatusFilter.CHOICES, required=False)
    topic = forms.CharField(max_length=40, required=False)
    priority = forms.TypedChoiceField(
        choices=[("", "Any priority"), *[(str(v), label) for v, label in Case.Priority.choices]],
        coerce=int,
        empty_value=None,
        required=False,
    )
    needs_reply = forms.BooleanField(required=False)
    brand = forms.IntegerField(required=False, min_value=1)
    sort = forms.ChoiceField(choices=Sort.CHOICES, required=False)
    # Where the page starts: an opaque, signed position in the list (see caredesk.cases.paging).
    cursor = forms.CharField(required=False, max_length=400)

    DEFAULTS: dict[str, Any] = {
        "queue": Queue.ALL,
        "status": StatusFilter.ACTIVE,
        "topic": "",
        "priority": None,
        "needs_reply": False,
        "brand": None,
        "sort": Sort.NEWEST,
        "cursor": "",
    }

    def values(self) -> dict[str, Any]:
        """Cleaned values with defaults for anything missing or invalid."""
        cleaned = self.cleaned_data if self.is_valid() else {
            k: v for k, v in getattr(self, "cleaned_data", {}).items() if k not in self.errors
        }
        out = dict(self.DEFAULTS)
        for key, value in cleaned.items():
            if value not in (None, ""):
                out[key] = value
        return out


def filter_query(values: dict[str, Any]) -> str:
    """The query string of the filters that differ from the defaults (for links that keep the list as it is)."""
    from urllib.parse import urlencode

    pairs = []
    for key, default in CaseFilterForm.DEFAULTS.items():
        value = values.get(key, default)
        if key == "cursor" or value == default:
            continue
        pairs.append((key, "on" if value is True else str(value)))
    return urlencode(pairs)


class SettleReplyForm(forms.Form):
    choice = forms.ChoiceField(choices=[("posted", "it was posted"), ("again", "send again"), ("discard", "discard")])
    external_id = forms.CharField(required=False, max_length=200)


class ReplyForm(forms.Form):
    text = forms.CharField(strip=False, required=False, max_length=20000)
    idempotency_key = forms.CharField(max_length=80)
    in_reply_to = forms.IntegerField(required=False, min_value=1)


class NoteForm(forms.Form):
    text = forms.CharField(strip=False, required=False, max_length=20000)


class AssignForm(forms.Form):
    """``assignee`` is a user id, ``me``, or empty to unassign."""

    assignee = forms.CharField(required=False, max_length=20)


class StatusForm(forms.Form):
    status = forms.ChoiceField(choices=Case.Status.choices)


class LabelForm(forms.Form):
    topic = forms.SlugField(max_length=40, required=False, allow_unicode=False)
    priority = forms.TypedChoiceField(
        choices=[("", "unchanged"), *[(str(v), label) for v, label in Case.Priority.choices]],
        coerce=int,
        empty_value=None,
        required=False,
    )


class LabelCorrectionForm(forms.Form):
    """One corrected label of a post. Which values a label accepts is the action's business (it names them)."""

    task = forms.ChoiceField(choices=Task.choices)
    value = forms.CharField(max_length=40)


class PresenceForm(forms.Form):
    mode = forms.ChoiceField(choices=CasePresence.Mode.choices, required=False)
