"""caredesk: an open-source social customer care desk."""

__version__ = "0.1.0"
