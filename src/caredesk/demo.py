"""Demo data: three fictional brands, each with a replay connector, and two people: Ana supervises every brand,
Ben is an agent for two of them (so the demo shows that a person sees only their brands)."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from caredesk.accounts.actions import do_create_brand, do_create_user, do_set_membership
from caredesk.accounts.models import Brand, Role
from caredesk.connectors.actions import do_create_installation
from caredesk.connectors.builtin.replay.brands import DEMO_BRANDS
from caredesk.connectors.models import ConnectorInstallation

DEMO_PASSWORD = "caredesk-demo"  # noqa: S105 - printed on purpose: demo logins
DEMO_AGENTS = ("ana", "ben")
# Ben's brands: the first two of DEMO_BRANDS.
BEN_BRANDS = 2


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
        brands: list[Brand] = []
        for brand_info in DEMO_BRANDS.values():
            brands.append(Brand.objects.get(slug=brand_info.key))
        for username in DEMO_AGENTS:
            user = User.objects.filter(username=username).first() or do_create_user(username, DEMO_PASSWORD)
            if username == "ana":
                for brand in brands:
                    do_set_membership(user, brand, Role.SUPERVISOR)
            else:
                for brand in brands[:BEN_BRANDS]:
                    do_set_membership(user, brand, Role.AGENT)
    return [(username, DEMO_PASSWORD) for username in DEMO_AGENTS]
