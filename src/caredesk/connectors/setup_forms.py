"""Setup forms for an admin, generated from a provider's own config and credentials models, so a new provider
gets its form without a template of its own.

Each pydantic field becomes a form field: text, number, a checkbox, one item per line for lists, a password input
for a ``SecretStr``. The provider's model still validates what the form collects (the form only parses), so the
browser, the CLI and the API refuse the same things with the same messages.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any

from django import forms
from django.urls import reverse
from pydantic import BaseModel, SecretStr

# Field types shown as one item per line.
_LIST_ORIGINS = (list, tuple, set, frozenset)


def _core(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``| None`` and whether None was allowed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _form_field(name: str, info: Any) -> forms.Field:
    annotation, optional = _core(info.annotation)
    required = info.is_required() and not optional
    label = name.replace("_", " ").capitalize()
    help_text = info.description or ""
    origin = typing.get_origin(annotation) or annotation
    if annotation is SecretStr:
        return forms.CharField(label=label, required=required, help_text=help_text,
                               widget=forms.PasswordInput(render_value=False), strip=True)
    if origin is typing.Literal:
        choices = [(str(v), str(v)) for v in typing.get_args(annotation)]
        return forms.ChoiceField(label=label, required=required, help_text=help_text, choices=choices,
                                 initial=None if info.is_required() else info.default)
    if annotation is bool:
        return forms.BooleanField(label=label, required=False, help_text=help_text, initial=info.default)
    if annotation in (int, float):
        return forms.FloatField(label=label, required=required, help_text=help_text,
                                initial=None if info.default is None or info.is_required() else info.default)
    if origin in _LIST_ORIGINS:
        return forms.CharField(label=label, required=required, help_text=(help_text + " One per line.").strip(),
                               widget=forms.Textarea(attrs={"rows": 3}))
    initial = info.default if isinstance(info.default, str) else None
    return forms.CharField(label=label, required=required, help_text=help_text, initial=initial, max_length=2000)


def _in_form(info: Any) -> bool:
    """Whether a field is asked for: not one the desk keeps itself (``json_schema_extra={"setup_form": False}``,
    such as a cached access token)."""
    extra = info.json_schema_extra
    return not (isinstance(extra, dict) and extra.get("setup_form") is False)


def model_form(
    model: type[BaseModel], prefix: str, data: Mapping[str, Any] | None = None,
    current: Mapping[str, Any] | None = None, *, all_optional: bool = False,
) -> forms.Form:
    """A form for ``model``; ``current`` values fill it in (lists one per line; never a secret), and with
    ``all_optional`` nothing is required (an edit where an empty field keeps what is stored)."""
    fields = {name: _form_field(name, info) for name, info in model.model_fields.items() if _in_form(info)}
    initial: dict[str, Any] = {}
    for name, value in (current or {}).items():
        if name not in fields or isinstance(fields[name].widget, forms.PasswordInput):
            continue
        initial[name] = "\n".join(str(v) for v in value) if isinstance(value, list | tuple) else value
    if all_optional:
        for field in fields.values():
            field.required = False
    form_class = type(f"{model.__name__}Form", (forms.Form,), fields)
    return form_class(data=data, prefix=prefix, initial=initial)


def collected(form: forms.Form, model: type[BaseModel], *, keep_empty_lists: bool = False) -> dict[str, Any]:
    """What the form collected, as the model's input (empty optional fields left out, lists split by line; with
    ``keep_empty_lists`` an emptied list is kept, so an edit can clear a list of keywords)."""
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if not _in_form(info):
            continue
        value = form.cleaned_data.get(name)
        annotation, _ = _core(info.annotation)
        origin = typing.get_origin(annotation) or annotation
        if origin in _LIST_ORIGINS:
            value = [line.strip() for line in (value or "").splitlines() if line.strip()]
            if not value and not info.is_required() and not keep_empty_lists:
                continue
        elif value in (None, "") and not info.is_required():
            continue
        elif annotation is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        values[name] = value
    return values


class AddConnectionForm(forms.Form):
    brand = forms.TypedChoiceField(coerce=int, label="Brand")
    provider = forms.ChoiceField(label="Platform")
    name = forms.CharField(max_length=120, label="Name", help_text="How the team will see this connection.")

    def __init__(self, *args: Any, brands: list[tuple[int, str]], providers: list[tuple[str, str]],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["brand"].choices = brands  # type: ignore[attr-defined]
        self.fields["provider"].choices = providers  # type: ignore[attr-defined]
        # Picking a platform swaps in its own settings and credentials fields.
        self.fields["provider"].widget.attrs.update({
            "hx-get": reverse("connectors:fields"), "hx-trigger": "change", "hx-target": "#provider-fields",
        })
