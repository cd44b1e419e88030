"""Demo data: three fictional brands, each with a replay connector, and two people: Ana supervises every brand,
Ben is an agent for two of them (so the demo shows that a person sees only their brands)."""

from __future__ import annotations

from pathlib import Path

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


def _publish_log(data_dir: Path | None, brand_key: str) -> dict[str, str]:
    if data_dir is None:
        return {}
    return {"publish_log": str(data_dir / f"replay-published-{brand_key}.jsonl")}


def seed_demo(speed: float = 1.0, data_dir: Path | None = None) -> list[tuple[str, str]]:
    """Create what the demo needs, keeping whatever an earlier run left. Returns the agents' logins.

    With ``data_dir``, the simulated platform logs the replies it publishes there, so a send cut short by a stopped
    worker is settled by asking it (as a real platform would be asked) rather than left as delivery unknown.
    """
    with transaction.atomic():
        for brand_info in DEMO_BRANDS.values():
            brand = do_create_brand(brand_info.name, brand_info.key)
            installation = ConnectorInstallation.objects.filter(brand=brand, provider_key="replay").first()
            if installation is None:
                config = {"brand": brand_info.key, "speed": speed, "platform": "x"}
                do_create_installation(
                    brand,
                    "replay",
                    f"{brand_info.name} on X (replay)",
                    {**config, **_publish_log(data_dir, brand_info.key)},
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
