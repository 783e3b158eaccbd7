"""The shape of `engine/`: no import cycles, no module over the size limit.

The imports are read from the source (ast), every one of them: at the top,
inside functions (a lazy import only hides a cycle) and under TYPE_CHECKING
(a cycle of types is still two modules that cannot be understood apart).
Importing `a.b.c` from outside package `a.b` runs `a/b/__init__.py` too, so it
counts as importing `a.b` as well; a module importing its own package's
siblings does not (that is how a package is built).
"""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parent.parent / "engine"
MAX_LINES = 450

# Known debts, exempted by name. An exemption that no longer applies fails the
# test, so each is deleted the moment it is paid and cannot hide a new problem.
PENDING_OVERSIZE: frozenset[str] = frozenset()
PENDING_CYCLES: frozenset[frozenset[str]] = frozenset()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = ENGINE) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The engine modules that importing `name` runs, directly."""
    own_package = package_of(name, path)
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = own_package.split(".")
                base = base[: len(base) - node.level + 1]
                stem = ".".join([*base, node.module] if node.module else base)
            else:
                stem = node.module or ""
            targets.add(stem)
            # `from package import module` imports that module.
            targets.update(f"{stem}.{alias.name}" for alias in node.names)
    found: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for depth in range(1, len(parts) + 1):
            candidate = ".".join(parts[:depth])
            if candidate not in known or candidate == name:
                continue
            # An ancestor package of the importer is already being imported.
            if own_package == candidate or own_package.startswith(candidate + "."):
                continue
            found.add(candidate)
    return found


def import_graph(root: Path = ENGINE) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_import_graph_walk_sees_imports_of_every_kind(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    files = {
        "__init__.py": "from pkg import top\n",
        "top.py": "import pkg.sub.leaf\n",
        "lazy.py": "def f():\n    from pkg.sub import leaf\n",
        "typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import lazy\n",
        "sub/__init__.py": "from .leaf import X\n",
        "sub/leaf.py": "from .. import typed\nX = 1\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    assert import_graph(root) == {
        "pkg": {"pkg.top"},
        "pkg.top": {"pkg.sub", "pkg.sub.leaf"},  # a package's __init__ runs first
        "pkg.lazy": {"pkg.sub", "pkg.sub.leaf"},  # inside a function
        "pkg.typed": {"pkg.lazy"},  # under TYPE_CHECKING
        "pkg.sub": {"pkg.sub.leaf"},
        "pkg.sub.leaf": {"pkg.typed"},  # relative, two levels up
    }


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_engine_has_no_import_cycle() -> None:
    found = {frozenset(group) for group in cycles(import_graph())}
    new = [sorted(group) for group in found - PENDING_CYCLES]
    assert not new, f"import cycles in engine/: {new}"
    stale = [sorted(group) for group in PENDING_CYCLES - found]
    assert not stale, f"no longer a cycle, delete its exemption: {stale}"


def test_no_engine_module_is_over_the_size_limit() -> None:
    sizes = {
        str(path.relative_to(ENGINE.parent)): len(path.read_text().splitlines())
        for path in modules().values()
    }
    over = {path: lines for path, lines in sizes.items() if lines > MAX_LINES}
    new = {path: lines for path, lines in over.items() if path not in PENDING_OVERSIZE}
    assert not new, f"modules over {MAX_LINES} lines (split them by job): {new}"
    stale = sorted(PENDING_OVERSIZE - over.keys())
    assert not stale, f"no longer over {MAX_LINES} lines, delete its exemption: {stale}"
