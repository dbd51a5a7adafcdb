"""The public API: every method of DashDatabase and its view, on every backend."""

from __future__ import annotations

import ast
import inspect
import string
from pathlib import Path
from typing import Any

import pytest

import dash_database
from dash_database import DashDatabase


def test_all_lists_exactly_the_public_names() -> None:
    """``__all__`` names exactly what the package exports, and each name exists."""
    public = {
        name
        for name, value in vars(dash_database).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert set(dash_database.__all__) == public | {"__version__"}
    assert dash_database.__all__ == [
        "AsyncDashDatabase",
        "AsyncInspector",
        "AsyncUserValues",
        "DashDatabase",
        "Inspector",
        "Stats",
        "UserStats",
        "UserSummary",
        "UserValues",
        "__version__",
        "new_session_id",
    ]
    namespace: dict[str, object] = {}
    exec("from dash_database import *", namespace)  # what a star import really gives
    assert set(dash_database.__all__) <= set(namespace)


def test_init_module_only_reexports() -> None:
    """``dash_database/__init__.py`` holds a docstring, imports and ``__all__``, nothing else."""
    tree = ast.parse(Path(dash_database.__file__).read_text(encoding="utf-8"))
    for statement in tree.body:
        if isinstance(statement, ast.Expr):
            assert statement is tree.body[0], "only the module docstring may be an expression"
        elif isinstance(statement, ast.Assign):
            assert [ast.unparse(target) for target in statement.targets] == ["__all__"]
        else:
            assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)


def test_new_session_id_is_random_and_url_safe() -> None:
    """Session ids carry at least 128 random bits in URL-safe characters, and never repeat."""
    ids = {dash_database.new_session_id() for _ in range(1000)}
    assert len(ids) == 1000
    for session_id in ids:
        assert len(session_id) * 6 >= 128
        assert set(session_id) <= set(string.ascii_letters + string.digits + "-_")


def test_context_manager_closes(tmp_path: Any) -> None:
    """Leaving a ``with`` block closes the database, also on an exception."""
    with DashDatabase(tmp_path / "a.sqlite3") as db:
        db.store_user_value(1, "k", 1)
    assert db.closed
    with pytest.raises(RuntimeError), DashDatabase(tmp_path / "a.sqlite3") as db:
        raise RuntimeError
    assert db.closed
    with DashDatabase(tmp_path / "a.sqlite3") as db:
        assert db.get_user_value(1, "k") == 1


def test_repr_shows_the_location(tmp_path: Any) -> None:
    """``repr`` shows where the data lives, the serializer and whether it is closed."""
    path = tmp_path / "r.sqlite3"
    db = DashDatabase(path, serializer="json")
    assert repr(db) == f"DashDatabase({str(path)!r}, serializer='json')"
    db.close()
    assert repr(db).endswith(", closed)")
    assert repr(DashDatabase(":memory:")) == "DashDatabase(':memory:', serializer='pickle')"


def test_bad_options_raise_value_error() -> None:
    """An unknown serializer or durability raises ValueError naming the choices."""
    with pytest.raises(ValueError, match="serializer must be one of"):
        DashDatabase(":memory:", serializer="yaml")
    with pytest.raises(ValueError, match="durability must be one of"):
        DashDatabase(":memory:", durability="fast")
