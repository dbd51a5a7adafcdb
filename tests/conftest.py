"""Fixtures shared by the test suite: one ``db`` per backend location."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dash_database import DashDatabase

#: Every backend the contract suite runs over, by name.
BACKENDS = ["sqlite-temp", "sqlite-memory", "sqlite-path"]

OpenDb = Callable[..., DashDatabase]


def open_backend(name: str, tmp_path: Path, **options: Any) -> DashDatabase:
    """Open a fresh, empty database of the named backend."""
    if name == "sqlite-temp":
        return DashDatabase(None, **options)
    if name == "sqlite-memory":
        return DashDatabase(":memory:", **options)
    if name == "sqlite-path":
        return DashDatabase(tmp_path / "store.sqlite3", **options)
    raise ValueError(name)


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    return str(request.param)


@pytest.fixture
def open_db(backend_name: str, tmp_path: Path) -> Iterator[OpenDb]:
    """A factory of fresh databases of the backend under test, closed afterwards."""
    opened: list[DashDatabase] = []
    counter = iter(range(1_000_000))

    def factory(**options: Any) -> DashDatabase:
        folder = tmp_path / f"db{next(counter)}"
        folder.mkdir()
        db = open_backend(backend_name, folder, **options)
        opened.append(db)
        return db

    yield factory
    for db in opened:
        db.close()


@pytest.fixture
def db(open_db: OpenDb) -> DashDatabase:
    """A fresh, empty database of the backend under test."""
    return open_db()


@pytest.fixture
def file_db(tmp_path: Path) -> Iterator[DashDatabase]:
    """A database in a SQLite file, for tests about files and processes."""
    with DashDatabase(tmp_path / "shared.sqlite3") as db:
        yield db
