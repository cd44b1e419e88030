"""Triage: label inbound posts (complaint, reply needed, sentiment, topic, urgency, spam, PII, language).

The public API is what this module exports: ``classify``, ``classify_batch`` and ``classify_one`` over
:class:`~caredesk.triage.types.PostSignals`, PII detection and masking, the default topic taxonomy. See MODEL_CARD.md
for what the shipped model is and is not.

Layout, lowest layer first; a module imports only from its own layer or the ones above it in this list (tested by
tests/triage/test_triage_imports.py, which fails on any import cycle):

* ``vocabulary`` (task names and label values: the one definition), ``types`` (PostSignals, TriageResult), ``arrays``
  (numpy helpers): leaves.
* ``text/``: tokenising (``tokens``), language, the lexicon, phrase matching.
* ``rules/``: PII, topics, the per-post lexicon counts the rules use (``features``) and the reasons they give.
* ``semantic/``: the optional sentence-embedding model, and fine-tuning its encoder.
* ``model/``: vectorising text, the trained models and their bundle file, the classifier that combines rules and
  models (one formula per label, urgency and spam included), the result columns.
* ``training/``: fitting and evaluating models, and ``build`` (``python -m caredesk.triage.training.build``), which
  rebuilds the shipped ``model_default.npz``.
* ``cli``: the ``caredesk triage ...`` commands; ``train --brand`` sets Django up (with the set-up function the main
  CLI hands in) and then uses ``brand_models``.

Everything above but ``cli`` is pure: no Django, no database. The Django app (label ``triage``) is the rest, and
only these modules touch the database: ``models`` (label corrections, brand models), ``actions`` (every write),
``brand_models`` (a brand's training data, storing and loading its model) and ``migrations/``. They use the pure
part; it never imports them.
"""

from caredesk.triage.model.classifier import classify, classify_batch, classify_one
from caredesk.triage.model.results import TriageBatch
from caredesk.triage.rules.pii import detect_pii, mask_pii
from caredesk.triage.rules.topics import DEFAULT_TOPICS, Taxonomy

__all__ = [
    "DEFAULT_TOPICS",
    "Taxonomy",
    "TriageBatch",
    "classify",
    "classify_batch",
    "classify_one",
    "detect_pii",
    "mask_pii",
]
