"""Each Activity row records the id of the transaction that wrote it, for the live stream's horizon.

Ids are taken when rows are inserted, not when their transaction commits, so "every id above the last one seen" can
miss a row that commits late. The stream instead orders events by (transaction id, id) and delivers only rows whose
transaction is older than the oldest one still running (``pg_snapshot_xmin``): every such row has committed or never
will, so nothing can appear behind a position already delivered. See :mod:`caredesk.inbox.stream`.

The column is not a model field: the database fills it (``DEFAULT pg_current_xact_id()``, the top-level
transaction's id even inside a savepoint), and only the stream's SQL reads it. Existing rows get this migration's
transaction id, which is older than any transaction to come.
"""

from django.db import migrations

FORWARD = """
ALTER TABLE cases_activity ADD COLUMN txid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX activity_stream_idx ON cases_activity (txid, id);
"""

BACKWARD = """
DROP INDEX IF EXISTS activity_stream_idx;
ALTER TABLE cases_activity DROP COLUMN IF EXISTS txid;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0007_activity_reply_unknown"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
