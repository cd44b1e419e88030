"""The label vocabulary of triage: the tasks, their values, and how a yes/no value is spelled. Defined here only.

Everything that names a task or a label value imports it from this module: the classifier and training, the
``caredesk triage`` commands, the label-correction model and actions, the inbox forms and the API schemas. Pure
Python (no Django, no numpy), so any layer may import it.
"""

from __future__ import annotations

from typing import Literal, get_args

# --- tasks ---------------------------------------------------------------------------------------------------------

COMPLAINT = "complaint"
NEEDS_REPLY = "needs_reply"
SENTIMENT = "sentiment"
TOPIC = "topic"
SPAM = "spam"

# The labels a model can learn, an agent can correct and a brand model can be trained for.
TASKS: tuple[str, ...] = (COMPLAINT, NEEDS_REPLY, SENTIMENT, TOPIC, SPAM)
# Tasks whose value is a yes/no decision, written "true"/"false" in files and corrections.
BINARY_TASKS = frozenset({COMPLAINT, NEEDS_REPLY, SPAM})
# How a person reads each task's name (the inbox's label corrections, activity texts).
TASK_NAMES = {COMPLAINT: "Complaint", NEEDS_REPLY: "Needs reply", SENTIMENT: "Sentiment", TOPIC: "Topic", SPAM: "Spam"}
# The tasks the shipped default model has a trained model for; spam is decided by rules (and brand models).
MODEL_TASKS: tuple[str, ...] = (COMPLAINT, NEEDS_REPLY, SENTIMENT, TOPIC)

# --- values --------------------------------------------------------------------------------------------------------

TRUE, FALSE = "true", "false"
# A yes/no model's classes, in the sorted order a trained model keeps them.
BINARY_CLASSES: tuple[str, ...] = (FALSE, TRUE)

Sentiment = Literal["negative", "neutral", "positive"]
# In this order everywhere: a sentiment model's columns, the classifier's probabilities, the inbox's choices.
SENTIMENTS: tuple[Sentiment, ...] = get_args(Sentiment)
# Short spellings a labelled file may use.
SENTIMENT_ALIASES = {"neg": "negative", "neu": "neutral", "pos": "positive"}
