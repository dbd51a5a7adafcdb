"""A failed write raises in its caller, changes nothing, and leaves no error for the next call."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from dash_database import DashDatabase
from dash_database.exceptions import StorageError


def engine(db: DashDatabase, sql: str) -> None:
    """Run ``sql`` on the engine connection that performs the database's writes."""
    db._backend._conn.run(sql)  # type: ignore[attr-defined]


def test_locked_database_times_out_in_the_caller(tmp_path: Path) -> None:
    """A write lock held elsewhere past ``timeout`` raises StorageError; nothing is lost."""
    path = tmp_path / "locked.sqlite3"
    db = DashDatabase(path, timeout=0.2)
    db.store_user_value(1, "k", "old")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StorageError, match=r"locked.*timeout=0.2s") as info:
        db.store_user_value(1, "k", "new")
    assert isinstance(info.value, OSError)
    with pytest.raises(StorageError, match="locked"):
        db.update_user_value(1, "k", lambda v: v + "!")
    with pytest.raises(StorageError, match="locked"):
        db.delete_all_user_values(1)
    assert db.get_user_value(1, "k") == "old"  # WAL readers are not blocked
    other.execute("ROLLBACK")
    db.store_user_value(2, "k", "after")  # the old error is not raised again
    assert db.get_user_value(1, "k") == "old"
    assert db.get_user_value(2, "k") == "after"
    other.close()
    db.close()


def test_read_only_database_raises_in_the_caller(file_db: DashDatabase) -> None:
    """Writes to a database that became read-only raise; every value stays readable."""
    file_db.store_user_value(1, "k", "kept")
    file_db.store_user_value(2, "k", "kept too")
    engine(file_db, "PRAGMA query_only = ON")
    with pytest.raises(StorageError, match="read-only"):
        file_db.store_user_value(1, "k", "lost?")
    with pytest.raises(StorageError, match="read-only"):
        file_db.update_user_value(1, "k", lambda v: v * 2)
    with pytest.raises(StorageError, match="read-only"):
        file_db.delete_user_value(2, "k")
    with pytest.raises(StorageError, match="read-only"):
        file_db.delete_all_user_values(2)
    assert file_db.get_user_value(1, "k") == "kept"
    assert file_db.get_user_value(2, "k") == "kept too"
    engine(file_db, "PRAGMA query_only = OFF")
    file_db.store_user_value(3, "k", "works again")
    assert file_db.list_users() == [1, 2, 3]


def test_full_database_raises_in_the_caller(file_db: DashDatabase) -> None:
    """A write that does not fit raises StorageError; earlier values and later calls are fine."""
    file_db.store_user_value(1, "k", "kept")
    engine(file_db, "PRAGMA max_page_count = 60")
    with pytest.raises(StorageError, match="full"):
        file_db.store_user_value(2, "big", os.urandom(1024 * 1024))
    with pytest.raises(StorageError, match="full"):
        file_db.store_user_value(1, "k", os.urandom(512 * 1024))
    assert file_db.get_user_value(1, "k") == "kept"
    assert file_db.get_user_value(2, "big") is None
    file_db.store_user_value(3, "small", 1)
    assert file_db.list_users() == [1, 3]
