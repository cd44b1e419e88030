"""Activities partitioned by month of ``created_at`` (see :mod:`caredesk.retention.partitions`).

The table is rebuilt as a partitioned one with the same columns (``txid`` included), rows, identity sequence
position, constraints and indexes; its primary key in the database becomes ``(id, created_at)``, which PostgreSQL
requires of a partitioned table, while Django's state keeps ``id`` (nothing references activities by key).
The copy holds an exclusive lock on the table while it runs: on a large deployment, run it in a quiet hour.
"""

from django.db import migrations

from caredesk.retention.partitions import partition_migration


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0011_post_edited_deleted"),
    ]

    operations = [
        migrations.RunPython(
            partition_migration("cases_activity", partitioned=True),
            partition_migration("cases_activity", partitioned=False),
        )
    ]
