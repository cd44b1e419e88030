"""X (Twitter) API v2: mentions of the brand's account by polling, and replies. See :class:`XProvider`."""

from caredesk.connectors.builtin.x.config import XConfig, XCredentials
from caredesk.connectors.builtin.x.provider import XProvider

__all__ = ["XConfig", "XCredentials", "XProvider"]
