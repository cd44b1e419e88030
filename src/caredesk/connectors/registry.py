"""Provider discovery through the ``caredesk.connectors`` entry-point group, so a third-party package can add a
platform without touching caredesk."""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

from caredesk.connectors.base import ConnectorError, Provider

log = logging.getLogger(__name__)


# Entry points that could not be loaded, with why: one broken third-party package must not take every other
# provider down with it, and asking for it by name says what is wrong.
_broken: dict[str, str] = {}


# Providers added without an entry point (register_provider); they shadow an installed one of the same key.
_registered: dict[str, type[Provider]] = {}  # type: ignore[type-arg]


def providers() -> dict[str, type[Provider]]:  # type: ignore[type-arg]
    """Every provider by key: the installed ones (entry points) and those registered in this process."""
    return {**discovered(), **_registered}


@cache
def discovered() -> dict[str, type[Provider]]:  # type: ignore[type-arg]
    found: dict[str, type[Provider]] = {}  # type: ignore[type-arg]
    for ep in entry_points(group="caredesk.connectors"):
        try:
            cls = ep.load()
        except Exception as exc:  # an import error, or anything a third-party module raises on import
            _broken[ep.name] = f"cannot be loaded ({type(exc).__name__}: {exc})"
            log.error("connector provider %r (%s) cannot be loaded", ep.name, ep.value, exc_info=True)
            continue
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            _broken[ep.name] = f"entry point {ep.value!r} does not name a Provider subclass"
        elif cls.key != ep.name:
            _broken[ep.name] = f"entry point names a provider whose key is {cls.key!r}"
        else:
            found[ep.name] = cls
    return found


def get_provider_class(key: str) -> type[Provider]:  # type: ignore[type-arg]
    try:
        return providers()[key]
    except KeyError:
        if key in _broken:
            raise ConnectorError(f"connector provider {key!r} is installed but {_broken[key]}") from None
        known = ", ".join(sorted(providers())) or "none"
        raise ConnectorError(f"unknown connector provider {key!r} (installed: {known})") from None


def register_provider(cls: type[Provider]) -> None:  # type: ignore[type-arg]
    """Add a provider without an entry point (embedding applications, tests)."""
    _registered[cls.key] = cls


def unregister_provider(key: str) -> None:
    """Take back :func:`register_provider`; an installed provider of that key is never removed."""
    _registered.pop(key, None)
