"""Raw payloads partitioned by month of ``received_at`` (see :mod:`caredesk.retention.partitions`).

The same rebuild as ``cases.0012`` for activities: same columns, rows, ids, constraints and indexes; the database's
primary key becomes ``(id, received_at)``, Django's state keeps ``id`` (nothing references payloads by key).
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
