import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def grant_existing_agents(apps, schema_editor):
    """Before memberships every active agent worked every brand; keep that for the people who already exist, so
    an upgrade locks nobody out. Site owners need no membership."""
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    Brand = apps.get_model("accounts", "Brand")
    Membership = apps.get_model("accounts", "Membership")
    brands = list(Brand.objects.values_list("pk", flat=True))
    Membership.objects.bulk_create(
        [
            Membership(user_id=user_id, brand_id=brand_id, role="agent")
            for user_id in User.objects.filter(is_active=True, is_superuser=False).values_list("pk", flat=True)
            for brand_id in brands
        ],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Membership',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('role', models.CharField(choices=[('admin', 'Admin'), ('supervisor', 'Supervisor'), ('agent', 'Agent'), ('volunteer', 'Volunteer')], max_length=12)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('brand', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='accounts.brand')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'constraints': [
                    models.UniqueConstraint(fields=('user', 'brand'), name='membership_unique_per_brand'),
                    models.CheckConstraint(condition=models.Q(('role__in', ['admin', 'supervisor', 'agent', 'volunteer'])), name='membership_role_known'),
                ],
            },
        ),
        migrations.RunPython(grant_existing_agents, migrations.RunPython.noop),
    ]
