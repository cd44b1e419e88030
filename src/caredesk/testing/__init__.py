"""Support for caredesk's own test suite (loaded with ``-p caredesk.testing.database``)."""
