"""Bluesky: listening on Jetstream, mentions by notifications, replies and chat messages through the brand's PDS."""

from caredesk.connectors.builtin.bluesky.config import BlueskyConfig, BlueskyCredentials
from caredesk.connectors.builtin.bluesky.jetstream import Listener, StreamCursor
from caredesk.connectors.builtin.bluesky.provider import BlueskyProvider
from caredesk.connectors.builtin.bluesky.richtext import facets, tid_from_key

__all__ = ["BlueskyConfig", "BlueskyCredentials", "BlueskyProvider", "Listener", "StreamCursor", "facets",
           "tid_from_key"]
