"""The layout of caredesk.triage: no import cycles, and the pure part never imports Django.

The graph is read from the source with ``ast`` and counts every import: at module level, inside functions (a lazy
import that closes a cycle is still a cycle, only deferred) and under ``TYPE_CHECKING``. ``from pkg import name``
is an edge to ``pkg.name`` when that is a module, else to ``pkg``. The implicit import of a module's parent packages
is not an edge: Python runs a package's ``__init__`` before its children, so a package that re-exports from its
children (``caredesk.triage`` does) is not a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import caredesk.triage

TRIAGE = Path(caredesk.triage.__file__).resolve().parent
# The Django app's modules: the only ones that may touch the database (and the commands, which set Django up).
DJANGO_MODULES = {"apps", "models", "actions", "brand_models", "migrations", "cli"}


def module_names(root: Path, package: str) -> dict[str, Path]:
    names: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (anywhere in its source)."""
    modules = module_names(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    child = f"{base}.{alias.name}"
                    targets.add(child if child in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_triage_has_no_import_cycle() -> None:
    graph = import_graph(TRIAGE, "caredesk.triage")
    assert len(graph) > 30  # the walk found the package, subpackages included
    assert "caredesk.triage.model.classifier" in graph["caredesk.triage.training.train"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_cycle_check_finds_a_lazy_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import f\n")
    (pkg / "a.py").write_text("from pkg.sub import b\n\ndef f():\n    return b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def g():\n    from pkg import a\n    return a\n")
    graph = import_graph(pkg, "pkg")
    assert graph["pkg"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]
    (pkg / "sub" / "b.py").write_text("def g():\n    return 1\n")
    assert find_cycle(import_graph(pkg, "pkg")) is None


def test_the_pure_part_imports_no_django() -> None:
    graph = import_graph(TRIAGE, "caredesk.triage")
    django_side = {m for m in graph if m.removeprefix("caredesk.triage.").split(".")[0] in DJANGO_MODULES}
    assert {"caredesk.triage.models", "caredesk.triage.actions", "caredesk.triage.brand_models"} <= django_side
    for name, path in module_names(TRIAGE, "caredesk.triage").items():
        if name in django_side:
            continue
        assert not graph[name] & django_side, f"{name} imports {graph[name] & django_side}"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                for module in modules:
                    assert module.split(".")[0] != "django", f"{name} imports {module}"
                    assert not module.startswith("caredesk.") or module.startswith("caredesk.triage"), (
                        f"{name} imports {module}"
                    )


def test_one_vocabulary_names_every_task() -> None:
    from caredesk.triage import vocabulary
    from caredesk.triage.models import Task

    assert tuple(Task.values) == vocabulary.TASKS
    assert set(vocabulary.TASK_NAMES) == set(vocabulary.TASKS)
    assert vocabulary.BINARY_TASKS | {vocabulary.SENTIMENT, vocabulary.TOPIC} == set(vocabulary.TASKS)
    assert set(vocabulary.MODEL_TASKS) == set(vocabulary.TASKS) - {vocabulary.SPAM}
    assert vocabulary.SENTIMENTS == ("negative", "neutral", "positive")
    assert set(vocabulary.SENTIMENT_ALIASES.values()) <= set(vocabulary.SENTIMENTS)
