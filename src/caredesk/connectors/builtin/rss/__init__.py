"""Blogs and news (RSS/Atom): feeds watched for a brand's names and keywords, read-only."""

from caredesk.connectors.builtin.rss.provider import READ_ONLY, ReadOnlyRules, RssConfig, RssProvider

__all__ = ["READ_ONLY", "ReadOnlyRules", "RssConfig", "RssProvider"]
