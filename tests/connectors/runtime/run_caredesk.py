"""``python tests/connectors/runtime/run_caredesk.py ARGS``: the ``caredesk`` command with the test providers
registered, for tests that start real processes (entry points cannot name test code)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runtime_providers import TEST_PROVIDERS  # noqa: E402

from caredesk.cli import main  # noqa: E402
from caredesk.connectors.registry import register_provider  # noqa: E402

if __name__ == "__main__":
    for provider in TEST_PROVIDERS:
        register_provider(provider)
    sys.exit(main(sys.argv[1:]))
