"""Demo data: three fictional brands, each with a replay connector, and two people: Ana supervises every brand,
Ben is an agent for two of them (so the demo shows that a person sees only their brands)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from caredesk.accounts.actions import do_create_brand, do_create_user, do_set_membership
from caredesk.accounts.models import Brand, Role
from caredesk.connectors.actions import do_create_installation, do_set_enabled
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


class DemoConnectionsError(Exception):
    """The demo's connections file cannot be used; the message says why."""


def load_connections(path: Path) -> list[dict[str, Any]]:
    """The real connections a demo runs instead of the replay, from a JSON file: a list of objects with ``brand``
    (a demo brand's slug), ``provider``, ``name``, and optionally ``config`` and ``credentials``."""
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DemoConnectionsError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise DemoConnectionsError(f"{path} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DemoConnectionsError(f"{path} must hold a JSON list of objects")
    brands = {b.key for b in DEMO_BRANDS.values()}
    for n, item in enumerate(items, 1):
        missing = [k for k in ("brand", "provider", "name") if not isinstance(item.get(k), str) or not item[k]]
        if missing:
            raise DemoConnectionsError(f"{path}: connection {n} needs {', '.join(missing)}")
        if item["brand"] not in brands:
            raise DemoConnectionsError(f"{path}: connection {n}: brand must be one of {', '.join(sorted(brands))}")
        for key in ("config", "credentials"):
            if not isinstance(item.get(key, {}), dict):
                raise DemoConnectionsError(f"{path}: connection {n}: {key} must be an object")
    return items


def seed_demo(
    speed: float = 1.0, data_dir: Path | None = None, connections: list[dict[str, Any]] | None = None
) -> list[tuple[str, str]]:
    """Create what the demo needs, keeping whatever an earlier run left. Returns the agents' logins.

    With ``data_dir``, the simulated platform logs the replies it publishes there, so a send cut short by a stopped
    worker is settled by asking it (as a real platform would be asked) rather than left as delivery unknown.
    With ``connections`` (see :func:`load_connections`), the demo brands listen on those real platforms instead
    of the replay: the replay connections are disabled, and each real one is added (asking the platform first)
    unless it exists.
    """
    if connections:
        _seed_brands_and_people()
        from caredesk.connectors.setup import add_connection

        for item in connections:
            brand = Brand.objects.get(slug=item["brand"])
            if not ConnectorInstallation.objects.filter(brand=brand, name=item["name"]).exists():
                add_connection(brand, item["provider"], item["name"], item.get("config", {}),
                               item.get("credentials", {}))
        with transaction.atomic():
            named = {item["name"] for item in connections}
            for replay in ConnectorInstallation.objects.filter(provider_key="replay", enabled=True):
                if replay.name not in named:
                    do_set_enabled(replay, False)
        return [(username, DEMO_PASSWORD) for username in DEMO_AGENTS]
    _seed_brands_and_people()
    with transaction.atomic():
        for replay in ConnectorInstallation.objects.filter(provider_key="replay", enabled=False):
            do_set_enabled(replay, True)  # a demo without connections is the replay demo again
        for brand_info in DEMO_BRANDS.values():
            brand = Brand.objects.get(slug=brand_info.key)
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
    return [(username, DEMO_PASSWORD) for username in DEMO_AGENTS]


def _seed_brands_and_people() -> None:
    with transaction.atomic():
        brands = [do_create_brand(b.name, b.key) for b in DEMO_BRANDS.values()]
        for username in DEMO_AGENTS:
            user = User.objects.filter(username=username).first() or do_create_user(username, DEMO_PASSWORD)
            if username == "ana":
                for brand in brands:
                    do_set_membership(user, brand, Role.SUPERVISOR)
            else:
                for brand in brands[:BEN_BRANDS]:
                    do_set_membership(user, brand, Role.AGENT)
