"""Threads and processes sharing one database lose no write and see no error."""

from __future__ import annotations

import gc
import multiprocessing
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dash_database import DashDatabase
from dash_database.exceptions import StorageError

SPAWN = multiprocessing.get_context("spawn")


def write_many(path: str, worker: int, count: int) -> None:
    """Process body: store ``count`` values under the worker's own user."""
    with DashDatabase(path) as db:
        for index in range(count):
            db.store_user_value(worker, index, f"{worker}-{index}")
            db.store_user_value("all", f"{worker}-{index}", index)


def increment(location: str, count: int, prefix: str | None = None) -> None:
    """Process body: increment one shared counter ``count`` times."""
    with DashDatabase(location, prefix=prefix) as db:
        for _ in range(count):
            db.update_user_value("shared", "counter", lambda n: n + 1, default=0)


def run_processes(target: Any, args: list[tuple[Any, ...]]) -> None:
    """Run one spawned process per argument tuple and require each to exit cleanly."""
    processes = [SPAWN.Process(target=target, args=a) for a in args]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0


def test_4_processes_x_300_writes_through_one_file(tmp_path: Path) -> None:
    """Four processes writing one file lose nothing; the final state equals the model."""
    path = str(tmp_path / "shared.sqlite3")
    DashDatabase(path).close()
    run_processes(write_many, [(path, worker, 300) for worker in range(4)])
    with DashDatabase(path) as db:
        for worker in range(4):
            assert dict(db.user(worker)) == {i: f"{worker}-{i}" for i in range(300)}
        assert len(db.user("all")) == 1200
        assert db.list_users() == [0, 1, 2, 3, "all"]


def test_update_is_atomic_across_processes(tmp_path: Path) -> None:
    """4 processes x 200 increments of one counter end at exactly 800."""
    path = str(tmp_path / "counter.sqlite3")
    DashDatabase(path).close()
    run_processes(increment, [(path, 200)] * 4)
    with DashDatabase(path) as db:
        assert db.get_user_value("shared", "counter") == 800


def test_update_is_atomic_across_processes_on_redis(redis_url: str) -> None:
    """4 processes x 200 increments through Redis (as on 4 hosts) end at exactly 800."""
    run_processes(increment, [(redis_url, 200, "counter:")] * 4)
    with DashDatabase(redis_url, prefix="counter:") as db:
        assert db.get_user_value("shared", "counter") == 800
        db.delete_all_user_values("shared")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_uses_its_own_connections(file_db: DashDatabase) -> None:
    """A database opened before fork (gunicorn --preload) works in the child and the parent."""
    file_db.store_user_value("parent", "k", 1)
    file_db.get_user_value("parent", "k")  # leaves a pooled read connection to inherit
    process = multiprocessing.get_context("fork").Process(target=child_writes, args=(file_db,))
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 0
    assert file_db.get_user_value("child", "k") == 1
    file_db.store_user_value("parent", "k", 2)
    assert file_db.get_user_value("parent", "k") == 2


def child_writes(db: DashDatabase) -> None:
    """Fork body: read the parent's value and write one of its own."""
    assert db.get_user_value("parent", "k") == 1
    db.update_user_value("child", "k", lambda n: n + 1, default=0)


def test_each_thread_reads_on_its_own_connection_closed_when_the_thread_ends(
    file_db: DashDatabase,
) -> None:
    """A thread's reader is its own, goes away with the thread, and close() closes the rest."""
    conn = file_db._backend._conn  # type: ignore[attr-defined]
    file_db.store_user_value("u", "k", 1)
    assert file_db.get_user_value("u", "k") == 1
    mine = conn.reader()
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(conn.reader()))
    thread.start()
    thread.join()
    assert seen[0] is not mine
    del seen[:]
    gc.collect()
    assert list(conn._readers) == [mine]
    file_db.close()
    with pytest.raises(sqlite3.ProgrammingError):
        mine.execute("SELECT 1")


def _held_new_file(path: str) -> sqlite3.Connection:
    """A new file whose first writer, in rollback mode as a new file is, holds its lock."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE early (a)")
    return other


def test_opening_a_new_file_waits_while_another_process_creates_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new file that another opener is writing opens once that write ends, not with "locked"."""
    other = _held_new_file(str(tmp_path / "new.sqlite3"))
    waits: list[float] = []

    def wait(seconds: float) -> None:  # the first wait lets the other opener finish
        waits.append(seconds)
        if other.in_transaction:
            other.execute("COMMIT")

    monkeypatch.setattr(time, "sleep", wait)
    with DashDatabase(str(tmp_path / "new.sqlite3")) as db:
        db.store_user_value("u", "k", 1)
        assert db.get_user_value("u", "k") == 1
    assert waits
    other.close()


def test_opening_a_new_file_held_past_the_timeout_fails_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An opener waits no longer than ``timeout`` and says which lock it waited for."""
    other = _held_new_file(str(tmp_path / "new.sqlite3"))
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    with pytest.raises(StorageError, match=r"locked.*another connection held the lock"):
        DashDatabase(str(tmp_path / "new.sqlite3"), timeout=0.05)
    other.close()
