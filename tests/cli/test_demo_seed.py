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
