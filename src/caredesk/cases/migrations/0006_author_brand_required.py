"""Customers per brand, step 3 of 3: once every Author has a brand, require it. A migration of its own because PostgreSQL
refuses to alter a table in the transaction that just updated its rows under deferred foreign-key checks."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('cases', '0005_split_authors_by_brand'),
    ]

    operations = [
        migrations.AlterField(
            model_name='author',
            name='brand',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='authors', to='accounts.brand'),
        ),
        migrations.AddConstraint(
            model_name='author',
            constraint=models.UniqueConstraint(fields=('brand', 'platform', 'external_id'), name='author_unique_per_brand_platform'),
        ),
    ]
