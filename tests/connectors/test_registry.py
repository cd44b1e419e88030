"""Provider discovery: one broken entry point does not take the other providers down, and says what is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint

import pytest

from caredesk.connectors import registry
from caredesk.connectors.base import ConnectorError


@pytest.fixture
def entry_points(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EntryPoint]]:
    """The installed entry points plus whatever a test adds (a stand-in for a third-party package's metadata)."""
    extra: list[EntryPoint] = []
    real = registry.entry_points

    def fake(group: str) -> list[EntryPoint]:
        return [*real(group=group), *extra]

    monkeypatch.setattr(registry, "entry_points", fake)
    registry.discovered.cache_clear()
    registry._broken.clear()
    yield extra
    registry.discovered.cache_clear()
    registry._broken.clear()


def test_a_broken_entry_point_leaves_the_others_working(entry_points: list[EntryPoint]) -> None:
    group = "caredesk.connectors"
    entry_points += [
        EntryPoint("missing", "caredesk_no_such_package.provider:Thing", group),
        EntryPoint("notaprovider", "caredesk.connectors.base:ConnectorError", group),
        EntryPoint("wrongkey", "caredesk.connectors.builtin.replay:ReplayProvider", group),
    ]
    assert {"replay", "file", "mastodon", "rss"} <= set(registry.providers())
    assert "missing" not in registry.providers()
    with pytest.raises(ConnectorError, match="'missing' is installed but cannot be loaded \\(ModuleNotFoundError"):
        registry.get_provider_class("missing")
    with pytest.raises(ConnectorError, match="does not name a Provider subclass"):
        registry.get_provider_class("notaprovider")
    with pytest.raises(ConnectorError, match="whose key is 'replay'"):
        registry.get_provider_class("wrongkey")
    with pytest.raises(ConnectorError, match="unknown connector provider 'nothing'"):
        registry.get_provider_class("nothing")


def test_registering_and_unregistering_never_removes_an_installed_provider() -> None:
    from caredesk.connectors.builtin.mastodon import MastodonProvider

    registry.register_provider(MastodonProvider)
    registry.unregister_provider("mastodon")
    assert registry.get_provider_class("mastodon") is MastodonProvider
