"""Demo data: three fictional brands, each with a replay connector, and two agents."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from caredesk.accounts.actions import do_create_brand, do_create_user
from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.builtin.replay.brands import DEMO_BRANDS
from caredesk.connectors.models import ConnectorInstallation

DEMO_PASSWORD = "caredesk-demo"  # noqa: S105 - printed on purpose: demo logins
DEMO_AGENTS = ("ana", "ben")


def seed_demo(speed: float = 1.0) -> list[tuple[str, str]]:
    """Create what the demo needs, keeping whatever an earlier run left. Returns the agents' logins."""
    with transaction.atomic():
        for brand_info in DEMO_BRANDS.values():
            brand = do_create_brand(brand_info.name, brand_info.key)
            installation = ConnectorInstallation.objects.filter(brand=brand, provider_key="replay").first()
            if installation is None:
                do_create_installation(
                    brand,
                    "replay",
                    f"{brand_info.name} on X (replay)",
                    {"brand": brand_info.key, "speed": speed, "platform": "x"},
                    own_account_ids=list(brand_info.account_ids),
                    own_handles=[brand_info.handle],
                )
        for username in DEMO_AGENTS:
            if not User.objects.filter(username=username).exists():
                do_create_user(username, DEMO_PASSWORD)
    return [(username, DEMO_PASSWORD) for username in DEMO_AGENTS]
