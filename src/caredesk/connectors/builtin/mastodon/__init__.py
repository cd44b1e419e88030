"""Mastodon: mentions, DMs and hashtag listening on one server, streamed over SSE with a REST catch-up, and
replies. See :class:`MastodonProvider`; :mod:`.oauth` registers the app and gets a token."""

from caredesk.connectors.builtin.mastodon.config import MastodonConfig, MastodonCredentials
from caredesk.connectors.builtin.mastodon.provider import MastodonProvider

__all__ = ["MastodonConfig", "MastodonCredentials", "MastodonProvider"]
