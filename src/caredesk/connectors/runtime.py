"""Turn an installation row into a working provider instance."""

from __future__ import annotations

import httpx

from caredesk.connectors.base import ConnectorError, Provider
from caredesk.connectors.models import ConnectorInstallation
from caredesk.connectors.registry import get_provider_class


def get_provider(installation: ConnectorInstallation, http: httpx.Client | None = None) -> Provider:  # type: ignore[type-arg]
    cls = get_provider_class(installation.provider_key)
    try:
        config = cls.parse_config(installation.config)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ConnectorError(f"installation {installation.name!r} has an invalid config: {exc}") from exc
    return cls(config, installation.get_credentials(), http)


def brand_account(installation: ConnectorInstallation) -> tuple[str, str]:
    """The platform account id and handle the brand answers from on this installation."""
    own = list(installation.own_account_ids or ())
    external_id = own[0] if own else f"brand-{installation.brand.slug}"
    handles = list(installation.own_handles or ())
    handle = handles[0] if handles else installation.brand.name.replace(" ", "")
    return external_id, handle
