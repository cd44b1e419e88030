from django.db import migrations, models
from django.db.models import JSONField, Value


class Migration(migrations.Migration):

    dependencies = [
        ('connectors', '0003_usage_ledger_and_budget'),
    ]

    operations = [
        migrations.AddField(
            model_name='connectorinstallation',
            name='ladder_state',
            field=models.JSONField(blank=True, default=dict, db_default=Value({}, JSONField())),
        ),
        migrations.AddField(
            model_name='connectorinstallation',
            name='listen_rung',
            field=models.CharField(blank=True, db_default='', default='', max_length=10),
        ),
    ]
