"""Indexes for the case lists at a million cases (issue 11): the two orderings, whole and for active cases, and
trigrams of the subject for ``q=``.

Built CONCURRENTLY (so outside a transaction): on a deployment's big table a plain CREATE INDEX would block every
write to cases for minutes. pg_trgm is a trusted extension: the database owner may create it.
"""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.operations import AddIndexConcurrently, TrigramExtension
from django.db import migrations, models
from django.db.models.functions import Upper

# Spelt as ORs, not IN: PostgreSQL prints an IN predicate in a form that reads back differently (bench/big_db.py
# recreates indexes from their printed definitions), and a query's ``status IN (...)`` implies either form.
ACTIVE = models.Q(status="new") | models.Q(status="open") | models.Q(status="pending")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("cases", "0012_case_closed_updated_idx"),
    ]

    operations = [
        TrigramExtension(),
        AddIndexConcurrently(
            model_name="case",
            index=models.Index(fields=["-last_inbound_at", "-id"], name="case_newest_idx"),
        ),
        AddIndexConcurrently(
            model_name="case",
            index=models.Index(fields=["-last_inbound_at", "-id"], name="case_active_newest_idx", condition=ACTIVE),
        ),
        AddIndexConcurrently(
            model_name="case",
            index=models.Index(fields=["-priority", "-urgency", "-last_inbound_at", "-id"], name="case_urgent_idx"),
        ),
        AddIndexConcurrently(
            model_name="case",
            index=models.Index(
                fields=["-priority", "-urgency", "-last_inbound_at", "-id"], name="case_active_urgent_idx",
                condition=ACTIVE,
            ),
        ),
        AddIndexConcurrently(
            model_name="case",
            index=GinIndex(OpClass(Upper("subject"), name="gin_trgm_ops"), name="case_subject_trgm_idx"),
        ),
    ]
