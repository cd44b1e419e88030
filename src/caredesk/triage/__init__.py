"""Triage: label inbound posts (complaint, reply needed, sentiment, topic, urgency, spam, PII, language).

Pure functions over text and metadata; no Django, no database. See MODEL_CARD.md for what v0 is and is not.
"""

from caredesk.triage.classifier import classify, classify_batch, classify_one
from caredesk.triage.pii import detect_pii, mask_pii
from caredesk.triage.results import TriageBatch
from caredesk.triage.topics import DEFAULT_TOPICS, Taxonomy

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
