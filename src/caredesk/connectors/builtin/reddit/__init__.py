"""Reddit: the brand account's inbox and mentions, keyword searches in subreddits (polled), and replies. See
:class:`RedditProvider`."""

from caredesk.connectors.builtin.reddit.config import RedditConfig, RedditCredentials
from caredesk.connectors.builtin.reddit.provider import RedditProvider

__all__ = ["RedditConfig", "RedditCredentials", "RedditProvider"]
