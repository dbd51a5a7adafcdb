"""A forked child (gunicorn --preload, multiprocessing) gets usable stores of its own."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from dash_database import DashDatabase

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def run_child(target: object, *args: object) -> int | None:
    """Run ``target(*args)`` in a forked child; return its exit code."""
    process = multiprocessing.get_context("fork").Process(target=target, args=args)  # type: ignore[arg-type]
    process.start()
    process.join(timeout=60)
    return process.exitcode


def child_writes_while_lock_is_held(db: DashDatabase) -> None:
    """Fork body: the write lock was held by a parent thread at the fork; write anyway."""
    db.store_user_value("child", "k", "written")
    assert db.get_user_value("child", "k") == "written"


def test_fork_while_another_thread_holds_the_write_lock(file_db: DashDatabase) -> None:
    """A child forked while a parent thread holds the engine's write lock can still write."""
    lock = file_db._backend._conn._lock  # type: ignore[attr-defined]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:  # as a thread halfway through a write at the moment of the fork
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(30)
    try:
        assert run_child(child_writes_while_lock_is_held, file_db) == 0
    finally:
        release.set()
        holder.join()
    assert file_db.get_user_value("child", "k") == "written"


def child_sees_an_empty_memory_store(db: DashDatabase) -> None:
    """Fork body: the memory store starts empty, and works."""
    assert db.list_users() == []
    db.store_user_value("child", "k", 1)
    assert db.get_user_value("child", "k") == 1


def test_memory_database_in_a_forked_child_starts_empty() -> None:
    """A forked child's memory store is empty and usable; the parent's keeps its values."""
    with DashDatabase(":memory:") as db:
        db.store_user_value("parent", "k", 1)
        assert run_child(child_sees_an_empty_memory_store, db) == 0
        assert db.get_user_value("parent", "k") == 1
        assert db.list_users() == ["parent"]


def child_closes(db: DashDatabase) -> None:
    """Fork body: close the inherited temporary store (which runs its finalizer)."""
    db.close()


def test_a_forked_child_never_removes_the_parents_temp_store() -> None:
    """Closing an inherited temporary store in a child leaves the parent's folder in place."""
    db = DashDatabase()
    db.store_user_value("u", "k", "v")
    folder = Path(db._backend.location).parent
    assert run_child(child_closes, db) == 0
    assert folder.is_dir()
    assert db.get_user_value("u", "k") == "v"
    db.close()
    assert not folder.exists()
