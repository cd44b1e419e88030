"""A brand's own triage model: the training data agents gave it, storing a trained bundle, loading the active one.

``caredesk triage train --brand SLUG --from-corrections`` reads :func:`corrections_dataset` and hands its result to
:func:`store_brand_model`; ingest asks :func:`active_bundle` once per batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import transaction

from caredesk.accounts.models import Brand
from caredesk.triage.actions import do_store_brand_model
from caredesk.triage.model.bundle import ModelBundle
from caredesk.triage.models import BrandTriageModel, LabelCorrection, Task

log = logging.getLogger(__name__)


class BrandModelError(Exception):
    """A request about a brand's model that cannot be met (unknown brand or task); the message says why."""


def _brand(brand_slug: str) -> Brand:
    brand = Brand.objects.filter(slug=brand_slug).first()
    if brand is None:
        raise BrandModelError(f"no brand with slug {brand_slug!r}")
    return brand


def corrections_dataset(brand_slug: str, task: str) -> tuple[list[str], list[str]]:
    """The texts of the brand's posts that agents corrected for ``task``, and the corrected values, in step.

    Values are strings as stored: ``"true"``/``"false"`` for yes/no tasks, a sentiment, a topic key. Oldest
    correction first, so a training run over the same corrections sees the same order.
    """
    if task not in Task.values:
        raise BrandModelError(f"unknown task {task!r}; use one of {', '.join(Task.values)}")
    brand = _brand(brand_slug)
    rows = (
        LabelCorrection.objects.filter(brand=brand, task=task)
        .order_by("created_at", "pk")
        .values_list("post__text", "value")
    )
    texts: list[str] = []
    labels: list[str] = []
    for text, value in rows:
        texts.append(text)
        labels.append(value)
    return texts, labels


def _n_examples(metrics: Mapping[str, Any]) -> int:
    """How many examples the bundle learnt from, as far as the metrics say (0 when they do not)."""
    total = metrics.get("n_examples")
    if isinstance(total, int | float):
        return int(total)
    found = 0
    for per_task in metrics.values():
        if isinstance(per_task, Mapping):
            n = per_task.get("n_examples", per_task.get("n"))
            if isinstance(n, int | float):
                found += int(n)
    return found


def store_brand_model(
    brand_slug: str,
    bundle: ModelBundle,
    metrics: Mapping[str, Any] | None = None,
    *,
    n_examples: int | None = None,
    now: datetime | None = None,
    keep_other_tasks: bool = True,
) -> None:
    """Store ``bundle`` as the brand's active model, in a transaction of its own (the caller is a job or command).

    Training one task must not make the brand forget the others: unless ``keep_other_tasks`` is off, the models
    (and per-task metrics) of tasks ``bundle`` lacks are carried over from the model active until now.
    ``n_examples`` (the examples this training used) defaults to what ``metrics`` report.
    """
    metrics = dict(metrics or {})
    count = n_examples if n_examples is not None else _n_examples(metrics)
    with transaction.atomic():
        # Locked before reading the active model, so two trainings of different tasks cannot both build on it.
        brand = Brand.objects.select_for_update().filter(slug=brand_slug).first()
        if brand is None:
            raise BrandModelError(f"no brand with slug {brand_slug!r}")
        if keep_other_tasks:
            bundle, metrics = _with_other_tasks(brand, bundle, metrics)
        row = do_store_brand_model(brand, bundle, metrics, count, now or datetime.now(UTC))
    log.info("stored triage model %s for brand %s (tasks %s)", row.pk, brand_slug, ",".join(row.tasks))


def _with_other_tasks(
    brand: Brand, bundle: ModelBundle, metrics: dict[str, Any]
) -> tuple[ModelBundle, dict[str, Any]]:
    previous = BrandTriageModel.objects.filter(brand=brand, active=True).first()
    if previous is None:
        return bundle, metrics
    try:
        earlier = ModelBundle.from_bytes(bytes(previous.bundle))
    except Exception:
        log.exception("triage model %s could not be loaded; storing the new one without its tasks", previous.pk)
        return bundle, metrics
    kept = {task: model for task, model in earlier.models.items() if task not in bundle.models}
    if not kept:
        return bundle, metrics
    old_metrics = previous.metrics if isinstance(previous.metrics, dict) else {}
    carried = {task: old_metrics[task] for task in kept if task in old_metrics}
    return ModelBundle({**kept, **bundle.models}), {**carried, **metrics}


# ---------------------------------------------------------------------------------------------------------------
# The active bundle, cached per process

_cache: dict[int, tuple[int, ModelBundle | None]] = {}
_cache_lock = threading.Lock()


def _load(row_id: int) -> ModelBundle | None:
    data = BrandTriageModel.objects.filter(pk=row_id).values_list("bundle", flat=True).first()
    if data is None:
        return None
    try:
        return ModelBundle.from_bytes(bytes(data))
    except Exception:
        # A bundle this version cannot read must not stop ingest: the brand falls back to the shipped model.
        log.exception("triage model %s could not be loaded; using the default model", row_id)
        return None


def active_bundle(brand_id: int) -> ModelBundle | None:
    """The brand's active model bundle, or None (use the shipped model).

    One cheap query per call (the active row's id); the bundle bytes are read and parsed only when that id
    changed since the last call in this process. A bundle that fails to load is remembered as None for that row.
    """
    active_id = (
        BrandTriageModel.objects.filter(brand_id=brand_id, active=True).values_list("pk", flat=True).first()
    )
    if active_id is None:
        with _cache_lock:
            _cache.pop(brand_id, None)
        return None
    with _cache_lock:
        cached = _cache.get(brand_id)
    if cached is not None and cached[0] == active_id:
        return cached[1]
    bundle = _load(active_id)
    with _cache_lock:
        _cache[brand_id] = (active_id, bundle)
    return bundle


def clear_bundle_cache() -> None:
    """Forget every cached bundle (tests; a process that wants to free the memory)."""
    with _cache_lock:
        _cache.clear()
