"""The README's promises that a newcomer runs by hand: the Quickstart sets up from a clone, and CI runs its test
command; its tables render (a blank line inside a Markdown table ends it and shows the rest as raw text)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.S | re.M)
    assert found is not None, title
    return found.group(1)


def _bash_blocks(text: str) -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_quickstart_clones_enters_and_makes_the_environment_first() -> None:
    blocks = _bash_blocks(_section("Quickstart"))
    setup, *commands = blocks
    lines = setup.splitlines()
    assert re.fullmatch(r"git clone \S.* caredesk && cd caredesk", lines[0]), lines[0]
    assert lines[1] == "python3 -m venv .venv && . .venv/bin/activate"
    # Then exactly two commands: the demo and the tests.
    assert commands == ['pip install -e . && python -m caredesk demo',
                        'pip install -e ".[test]" && python -m pytest']


def test_ci_runs_the_readme_test_command() -> None:
    test_command = _bash_blocks(_section("Quickstart"))[-1]
    ci = (REPO / ".ci" / "run").read_text()
    ran = [line.replace(" -q", "") for line in ci.splitlines() if not line.lstrip().startswith("#")]
    assert test_command in ran


def test_tables_have_no_blank_line_inside() -> None:
    lines = README.splitlines()
    for n in range(1, len(lines) - 1):
        if not lines[n].strip():
            assert not (lines[n - 1].startswith("|") and lines[n + 1].startswith("|")), f"README.md line {n + 1}"
