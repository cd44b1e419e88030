"""Customers per brand, step 1 of 3: Authors get a brand (see 0005 for why and how)."""


import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_membership'),
        ('cases', '0003_case_topic_idx'),
    ]

    operations = [
        migrations.RemoveConstraint(model_name='author', name='author_unique_per_platform'),
        migrations.AddField(
            model_name='author',
            name='brand',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='authors', to='accounts.brand'),
        ),
    ]
