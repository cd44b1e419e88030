"""Indexes for the case lists at a million cases (issue 11): the two orderings, whole and for active cases, and
trigrams of the subject for ``q=``.

Built CONCURRENTLY (so outside a transaction): on a deployment's big table a plain CREATE INDEX would block every
write to cases for minutes. pg_trgm is a trusted extension: the database owner may create it. The embedded server
(pgserver, the demo's) ships without it: there the trigram index is left out and ``q=`` reads the subjects, which
a demo's few thousand cases afford; Django's state has the index either way.
"""

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models
from django.db.models.functions import Upper

# Spelt as ORs, not IN: PostgreSQL prints an IN predicate in a form that reads back differently (bench/big_db.py
# recreates indexes from their printed definitions), and a query's ``status IN (...)`` implies either form.
ACTIVE = models.Q(status="new") | models.Q(status="open") | models.Q(status="pending")

SUBJECT_TRIGRAMS = GinIndex(OpClass(Upper("subject"), name="gin_trgm_ops"), name="case_subject_trgm_idx")


def _add_subject_trigrams(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        if cursor.fetchone() is None:
            return
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.add_index(apps.get_model("cases", "Case"), SUBJECT_TRIGRAMS, concurrently=True)


def _remove_subject_trigrams(apps, schema_editor):
    schema_editor.execute("DROP INDEX CONCURRENTLY IF EXISTS case_subject_trgm_idx")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("cases", "0012_case_closed_updated_idx"),
    ]

    operations = [
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
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="case", index=SUBJECT_TRIGRAMS)],
            database_operations=[migrations.RunPython(_add_subject_trigrams, _remove_subject_trigrams)],
        ),
    ]
