"""The demo's data: its replay platforms keep a log of what they publish in the data directory, so the sweeper can
ask them whether an interrupted send went out (as it would ask a real platform)."""

from __future__ import annotations

from pathlib import Path

import pytest

from caredesk.connectors.builtin.replay.brands import DEMO_BRANDS
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.runtime import get_provider
from caredesk.demo import seed_demo

pytestmark = pytest.mark.django_db


def test_each_demo_platform_logs_its_replies_in_the_data_dir(tmp_path: Path) -> None:
    seed_demo(data_dir=tmp_path)
    seed_demo(data_dir=tmp_path)  # repeatable: nothing doubled
    installations = ConnectorInstallation.objects.filter(provider_key="replay")
    assert installations.count() == len(DEMO_BRANDS)
    for installation in installations:
        provider = get_provider(installation)
        log = Path(provider.config.publish_log)  # type: ignore[attr-defined]
        assert log.parent == tmp_path and installation.config["brand"] in log.name


def test_real_connections_replace_the_replay_by_configuration(tmp_path: Path) -> None:
    import json

    from caredesk.demo import load_connections

    seed_demo(data_dir=tmp_path)
    brand = next(iter(DEMO_BRANDS.values())).key
    path = tmp_path / "connections.json"
    path.write_text(json.dumps([{"brand": brand, "provider": "replay", "name": "stand-in for a real platform",
                                 "config": {"brand": brand, "platform": "mastodon"}}]))
    seed_demo(data_dir=tmp_path, connections=load_connections(path))
    assert set(ConnectorInstallation.objects.filter(enabled=True).values_list("name", flat=True)) == {
        "stand-in for a real platform"}
    seed_demo(data_dir=tmp_path)  # without the file: the replay demo again
    assert ConnectorInstallation.objects.filter(provider_key="replay", enabled=False).count() == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [("{", "is not valid JSON"), ('{"a": 1}', "a JSON list of objects"),
     ('[{"brand": "nimbus"}]', "needs provider, name"),
     ('[{"brand": "elsewhere", "provider": "replay", "name": "x"}]', "brand must be one of"),
     ('[{"brand": "nimbus", "provider": "replay", "name": "x", "config": []}]', "config must be an object")],
)
def test_a_bad_connections_file_is_refused_with_a_reason(tmp_path: Path, content: str, message: str) -> None:
    from caredesk.demo import DemoConnectionsError, load_connections

    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(DemoConnectionsError, match=message):
        load_connections(path)
