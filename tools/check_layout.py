"""Check the package's layout: small modules and classes, no import loops, thin ``__init__``.

Run by ``.ci/run``: ``python tools/check_layout.py``. Exits 1 and lists every
breach; prints one summary line otherwise.
"""

from __future__ import annotations

import ast
import pathlib
import sys

PACKAGE = "dash_database"
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


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
        if lines > MAX_MODULE_LINES:
            problems.append(f"{path}: {lines} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    problems.append(f"{path}: class {node.name} has {size} lines")
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
    for problem in problems:
        print(problem)
    if not problems:
        print(f"layout: {len(files)} modules, none over {MAX_MODULE_LINES} lines, no import loop")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
