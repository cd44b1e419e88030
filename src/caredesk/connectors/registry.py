"""Provider discovery through the ``caredesk.connectors`` entry-point group, so a third-party package can add a
platform without touching caredesk."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from caredesk.connectors.base import ConnectorError, Provider


@cache
def providers() -> dict[str, type[Provider]]:  # type: ignore[type-arg]
    found: dict[str, type[Provider]] = {}  # type: ignore[type-arg]
    for ep in entry_points(group="caredesk.connectors"):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise ConnectorError(f"entry point {ep.name!r} does not name a Provider subclass")
        if cls.key != ep.name:
            raise ConnectorError(f"entry point {ep.name!r} names provider with key {cls.key!r}")
        found[ep.name] = cls
    return found


def get_provider_class(key: str) -> type[Provider]:  # type: ignore[type-arg]
    try:
        return providers()[key]
    except KeyError:
        known = ", ".join(sorted(providers())) or "none"
        raise ConnectorError(f"unknown connector provider {key!r} (installed: {known})") from None


def register_provider(cls: type[Provider]) -> None:  # type: ignore[type-arg]
    """Add a provider without an entry point (embedding applications, tests)."""
    providers()[cls.key] = cls


def unregister_provider(key: str) -> None:
    providers().pop(key, None)
