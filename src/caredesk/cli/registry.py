"""The types a feature's commands are registered with (``add_*_commands(add, setup)``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol


class AddParser(Protocol):
    """Makes a subcommand parser that takes ``--data-dir``; ``parent`` nests it under a command group."""

    def __call__(
        self, name: str, help_text: str, *, parent: Any = None, data_dir: bool = True
    ) -> argparse.ArgumentParser: ...


# The set-up context: database, Django and a schema check for the block (see caredesk.cli.context).
Setup = Callable[[argparse.Namespace], AbstractContextManager[Any]]
