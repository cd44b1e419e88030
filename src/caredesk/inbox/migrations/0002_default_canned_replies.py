from django.db import migrations

DEFAULTS = [
    ("Can I help?", "Can I help?"),
    ("Move to DM", "Sorry to hear that. Please send us a direct message with your account details so we can look "
     "into it privately; never post account numbers publicly."),
    ("Outage acknowledged", "We're aware of a service interruption in your area and our engineers are on it. We'll "
     "update you here as soon as it's fixed."),
    ("Home troubleshooting", "Let's try a quick fix: unplug your modem/router for 30 seconds, plug it back in and "
     "wait 2 minutes for the lights to settle. Did that bring the service back?"),
    ("Thanks!", "Thank you so much for the kind words, we'll pass them on to the team!"),
    ("Resolved check", "Glad we could sort this out. Anything else we can help with?"),
]


def create(apps, schema_editor):
    CannedReply = apps.get_model("inbox", "CannedReply")
    for title, text in DEFAULTS:
        CannedReply.objects.get_or_create(brand=None, title=title, defaults={"text": text})


def remove(apps, schema_editor):
    apps.get_model("inbox", "CannedReply").objects.filter(brand=None, title__in=[t for t, _ in DEFAULTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("inbox", "0001_initial")]
    operations = [migrations.RunPython(create, remove)]
