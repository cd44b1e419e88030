"""Raw payloads partitioned by month of ``received_at`` (see :mod:`caredesk.retention.partitions`).

The table is rebuilt as a partitioned one with the same columns, rows, identity sequence position, constraints and
indexes; its primary key in the database becomes ``(id, received_at)``, which PostgreSQL requires of a partitioned
table, while Django's state keeps ``id`` (nothing references payloads by key). The copy holds an exclusive lock on
the table while it runs (in proportion to its size): on a large deployment, run it in a quiet hour.
"""

from django.db import migrations

from caredesk.retention.partitions import partition_migration


class Migration(migrations.Migration):
    dependencies = [
        ("connectors", "0005_installation_compliance_swept_at"),
    ]

    operations = [
        migrations.RunPython(
            partition_migration("connectors_rawpayload", partitioned=True),
            partition_migration("connectors_rawpayload", partitioned=False),
        )
    ]
