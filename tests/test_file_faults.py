"""Faults of the volume a SQLite store lives on, made for real: a read-only volume."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dash_database import DashDatabase
from dash_database.exceptions import StorageError

from helpers import DATA, Clock, Volume

READ_ONLY = "read-only volume"


def _fill(path: Path) -> None:
    """A store with a small value, a side-file value, and an idle user."""
    with DashDatabase(path, expire_after=3600) as db:
        db._backend.chunk_size = 1024
        db.store_user_value("alice", "cart", [1, 2])
        db.store_user_value("alice", "upload", b"x" * 5000)  # in a side file


def test_a_store_on_a_read_only_volume_reads_and_refuses_every_write(
    tmp_path: Path, clock: Clock
) -> None:
    """Remounted read-only, the store opens for reading; each write says the volume is
    read-only and changes nothing."""
    with Volume(tmp_path / "volume") as volume:
        path = volume.folder / "store.sqlite3"
        _fill(path)
        volume.remount(read_only=True)
        with DashDatabase(path, expire_after=3600) as db:
            assert db.get_user_value("alice", "cart") == [1, 2]
            assert db.get_user_value("alice", "upload") == b"x" * 5000
            assert db.list_users() == ["alice"]
            assert db.stats().keys == 2
            clock.advance(7200)  # expired: invisible, though the volume keeps it
            assert db.get_user_value("alice", "cart") is None
            assert db.list_users() == []
            writes: list[Callable[[], object]] = [
                lambda: db.store_user_value("alice", "cart", [3]),
                lambda: db.store_user_value("bob", "upload", b"y" * 5000),
                lambda: db.update_user_value("alice", "n", lambda n: n + 1, default=0),
                lambda: db.delete_user_value("alice", "cart"),
                lambda: db.delete_all_user_values("alice"),
                lambda: db.rename_user("alice", "bob"),
                lambda: db.purge_expired(),
            ]
            for write in writes:
                with pytest.raises(StorageError, match=READ_ONLY):
                    write()
        volume.remount(read_only=False)
        with DashDatabase(path) as db:
            assert db.get_user_value("alice", "cart") == [1, 2]
            assert db.list_stored_user_keys("bob") == []


def test_an_older_file_on_a_read_only_volume_says_it_needs_one_writable_open(
    tmp_path: Path,
) -> None:
    """A file of an older release, which this one upgrades on first open, cannot be upgraded
    on a read-only volume: opening it says what to do."""
    with Volume(tmp_path / "volume") as volume:
        path = volume.folder / "old.db"
        shutil.copy(DATA / "store-2.2.1.db", path)
        volume.remount(read_only=True)
        with pytest.raises(StorageError, match="open it on a writable volume"):
            DashDatabase(path)


def test_a_killed_writers_log_is_read_on_a_read_only_volume(tmp_path: Path) -> None:
    """Writes a killed process left in the write-ahead log read back once the volume is
    read-only."""
    with Volume(tmp_path / "volume") as volume:
        path = volume.folder / "store.sqlite3"
        writer = (
            "import os, sys\nfrom dash_database import DashDatabase\n"
            "db = DashDatabase(sys.argv[1])\n"
            "for n in range(50): db.store_user_value('u', n, n)\n"
            "os._exit(0)  # no close: the log stays, as after a kill\n"
        )
        subprocess.run([sys.executable, "-c", writer, str(path)], check=True)
        assert Path(f"{path}-wal").exists()
        volume.remount(read_only=True)
        with DashDatabase(path) as db:
            assert [db.get_user_value("u", n) for n in range(50)] == list(range(50))
