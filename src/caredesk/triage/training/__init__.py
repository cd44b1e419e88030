"""Training: fitting and evaluating models, and ``build`` (``python -m caredesk.triage.training.build``). Pure."""
