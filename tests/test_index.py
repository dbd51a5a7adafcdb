"""Listing and deleting one user touch O(log N + k) rows: an index range, never a scan."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dash_database import DashDatabase
from dash_database.backends.sqlite import schema as backend


@pytest.mark.parametrize("sql", [backend.KEYS, backend.COUNT, backend.DELETE_RANGE])
def test_user_queries_use_the_primary_key_range(tmp_path: Path, sql: str) -> None:
    """The query plan of each per-user statement is an index search, not a scan."""
    path = tmp_path / "plan.sqlite3"
    DashDatabase(path).close()
    with sqlite3.connect(path) as conn:
        plan = " ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, ("a", "b")))
    assert "SEARCH dash_database USING" in plan
    assert "(key>? AND key<?)" in plan
    assert "SCAN" not in plan


def test_chunk_cleanup_uses_the_chunk_index(tmp_path: Path) -> None:
    """Deleting a value's chunks (the triggers' statement) is an index search."""
    path = tmp_path / "plan.sqlite3"
    DashDatabase(path).close()
    with sqlite3.connect(path) as conn:
        sql = 'EXPLAIN QUERY PLAN DELETE FROM "dash_database_chunks" WHERE key = ?'
        plan = " ".join(row[-1] for row in conn.execute(sql, ("a",)))
    assert "SEARCH dash_database_chunks USING" in plan


def steps_to_list_one_user(users: int, tmp_path: Path) -> int:
    """SQLite VM steps spent listing one user's 5 keys in a store of ``users`` x 5 keys."""
    path = tmp_path / f"store{users}.sqlite3"
    DashDatabase(path).close()
    with sqlite3.connect(path) as conn:
        conn.executemany(
            backend.PUT,
            ((backend.record_key(u, k), b"P", str(u), 1) for u in range(users) for k in range(5)),
        )
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    with DashDatabase(path) as db:
        conn = db._backend._conn.reader()  # type: ignore[attr-defined]
        conn.set_progress_handler(count, 1)
        assert db.list_stored_user_keys(users // 2) == [0, 1, 2, 3, 4]
        conn.set_progress_handler(None, 1)
    return steps


def test_listing_cost_does_not_grow_with_the_store(tmp_path: Path) -> None:
    """Listing one user in a 100x larger store costs about the same number of VM steps."""
    small = steps_to_list_one_user(200, tmp_path)
    large = steps_to_list_one_user(20_000, tmp_path)
    assert large < small * 1.5
