"""Check the package's layout: no import loops, thin ``__init__``, and decisions apart from I/O.

Run by ``.ci/run``: ``python tools/check_layout.py``. Exits 1 and lists every
breach; prints one summary line otherwise. A module over :data:`WARN_MODULE_LINES`
lines is only a warning: size is a smell to look at, not a rule (split modules by
purpose, never by size, and never squeeze a line to pass).
"""

from __future__ import annotations

import ast
import pathlib
import sys

PACKAGE = "dash_database"
WARN_MODULE_LINES = 500
#: Modules that decide and never act: they may import no engine (``backends``).
PURE = ("dash_database.activity", "dash_database.quotas", "dash_database.records")


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    """``dash_database/backends/base.py`` -> ``dash_database.backends.base``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.Module, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's own modules that a module imports, anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + is_package]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # "from . import sessions" imports the module sessions.
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {module for module in found if module in known and module != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop in ``graph``, as the modules along it, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def init_breaches(tree: ast.Module) -> list[str]:
    """What an ``__init__.py`` holds besides a docstring, imports and ``__all__``."""
    breaches = []
    for index, node in enumerate(tree.body):
        is_docstring = index == 0 and isinstance(node, ast.Expr)
        is_all = isinstance(node, ast.Assign) and [
            getattr(t, "id", None) for t in node.targets
        ] == ["__all__"]
        if not (is_docstring or is_all or isinstance(node, (ast.Import, ast.ImportFrom))):
            breaches.append(f"line {node.lineno}: {type(node).__name__}")
    return breaches


def main() -> int:
    """Check the tree; return the exit code."""
    root = pathlib.Path(__file__).resolve().parent.parent
    files = sorted((root / PACKAGE).rglob("*.py"))
    names = {module_name(path, root): path for path in files}
    graph: dict[str, set[str]] = {}
    problems: list[str] = []
    for name, path in names.items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        lines = text.count("\n")
        if lines > WARN_MODULE_LINES:
            print(f"warning: {path}: {lines} lines; is it one idea?")
        is_package = path.name == "__init__.py"
        if is_package:
            problems += [f"{path}: {breach}" for breach in init_breaches(tree)]
        graph[name] = imported_modules(tree, name, is_package, set(names))
    # A package's __init__ importing its own submodules is how it re-exports
    # them, not a loop: Python finishes the submodule first.
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    cycle = find_cycle(graph)
    if cycle:
        problems.append("import loop: " + " -> ".join(cycle))
    for name in PURE:
        engines = sorted(m for m in graph[name] if m.startswith(f"{PACKAGE}.backends"))
        if engines:
            problems.append(f"{name} decides and never acts, but imports {', '.join(engines)}")
    for problem in problems:
        print(problem)
    if not problems:
        print(f"layout: {len(files)} modules, no import loop, {', '.join(PURE)} import no engine")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
