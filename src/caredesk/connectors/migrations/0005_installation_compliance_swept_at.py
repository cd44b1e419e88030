from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('connectors', '0004_listening_ladder'),
    ]

    operations = [
        migrations.AddField(
            model_name='connectorinstallation',
            name='compliance_swept_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
