"""Large values on a SQLite file live in side files that come and go with their records."""

from __future__ import annotations

import os
import pickle
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from dash_database import DashDatabase, checksums, records
from dash_database.backends.sqlite import FileBackend
from dash_database.backends.sqlite.side_files import ORPHAN_SECONDS
from dash_database.exceptions import StorageError

from helpers import FailsWhilePickling

BIG = b"x" * 5000


@pytest.fixture
def db(tmp_path: Path) -> DashDatabase:
    """A file database that puts values over 1 KiB in side files."""
    database = DashDatabase(tmp_path / "db.sqlite3")
    backend(database).chunk_size = 1024
    return database


def backend(db: DashDatabase) -> FileBackend:
    """The SQLite backend of ``db``."""
    engine = db._backend
    assert isinstance(engine, FileBackend)
    return engine


def side_files(db: DashDatabase) -> list[str]:
    """The names in the database's side-file folder."""
    folder = backend(db).files.folder
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def test_large_value_goes_to_one_side_file_next_to_the_database(
    db: DashDatabase, tmp_path: Path
) -> None:
    """A value over the limit is one file in <database>-values; a small one is not."""
    db.store_user_value(1, "small", b"s")
    assert side_files(db) == []
    db.store_user_value(1, "big", BIG)
    assert backend(db).files.folder == str(tmp_path / "db.sqlite3-values")
    assert len(side_files(db)) == 1
    assert db.get_user_value(1, "big") == BIG
    # The file counted whole: each value is its tag, its header and its pickle.
    head = 1 + records.FIXED + checksums.SIZE
    stored = [head + len(pickle.dumps(value, protocol=5)) for value in (b"s", BIG)]
    assert db.user_stats(1).bytes == sum(stored)
    db.close()
    with DashDatabase(tmp_path / "db.sqlite3") as again:
        assert again.get_user_value(1, "big") == BIG


def test_replace_update_and_delete_remove_the_old_file(db: DashDatabase) -> None:
    """Every way a record goes away also removes its side file, after the commit."""
    db.store_user_value(1, "a", BIG)
    first = side_files(db)
    db.store_user_value(1, "a", BIG + b"2")
    assert len(side_files(db)) == 1
    assert side_files(db) != first
    db.update_user_value(1, "a", lambda old: old + b"3")
    assert db.get_user_value(1, "a") == BIG + b"23"
    assert len(side_files(db)) == 1
    db.store_user_value(1, "a", "small now")
    assert side_files(db) == []
    db.store_user_value(1, "a", BIG)
    db.delete_user_value(1, "a")
    assert side_files(db) == []
    db.store_user_value(2, "a", BIG)
    db.store_user_value(2, "b", BIG)
    db.delete_all_user_values(2)
    assert side_files(db) == []


def test_idle_user_purge_removes_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Expiring a user removes its side files with its records."""
    clock = [1_000_000.0]
    monkeypatch.setattr("dash_database.clock.now", lambda: clock[0])
    db = DashDatabase(tmp_path / "db.sqlite3", expire_after=60)
    backend(db).chunk_size = 1024
    db.store_user_value(1, "a", BIG)
    clock[0] += 3600
    assert db.purge_expired() == 1
    assert side_files(db) == []
    db.close()


def test_failed_serialization_leaves_no_file_and_the_old_value(db: DashDatabase) -> None:
    """Pickling that fails after the side file was started removes that file."""
    db.store_user_value(1, "v", BIG)
    before = side_files(db)
    with pytest.raises(TypeError, match="cannot be stored"):
        db.store_user_value(1, "v", FailsWhilePickling())
    with pytest.raises(ZeroDivisionError):
        db.update_user_value(1, "v", lambda old: 1 / 0)
    assert side_files(db) == before
    assert db.get_user_value(1, "v") == BIG


def test_failed_commit_removes_the_new_file(db: DashDatabase) -> None:
    """A record that cannot be committed takes its freshly written side file with it."""
    db.store_user_value(1, "v", BIG)
    before = side_files(db)
    backend(db)._conn.run("PRAGMA query_only = ON")
    with pytest.raises(StorageError, match="read-only"):
        db.store_user_value(1, "v", BIG + b"new")
    backend(db)._conn.run("PRAGMA query_only = OFF")
    assert side_files(db) == before
    assert db.get_user_value(1, "v") == BIG


def test_files_left_in_the_trash_are_removed_after_reopening(db: DashDatabase) -> None:
    """A crash between a commit and its file removal is finished by the next opener's write."""
    db.store_user_value(1, "v", BIG)
    (name,) = side_files(db)
    # As if the process died right after committing the delete.
    backend(db)._conn.run('DELETE FROM "dash_database" WHERE key = \'[1,"v"]\'')
    backend(db)._conn.run('INSERT OR IGNORE INTO "dash_database_trash" VALUES (?)', (name,))
    db.close()
    with DashDatabase(backend(db).location) as again:
        assert side_files(again) == [name]
        again.store_user_value(2, "other", 1)
        assert side_files(again) == []


def test_collect_garbage_removes_only_old_unreferenced_files(db: DashDatabase) -> None:
    """Files of writers that died before committing go once they are an hour old."""
    db.store_user_value(1, "kept", BIG)
    folder = Path(backend(db).files.folder)
    kept = side_files(db)
    old = time.time() - ORPHAN_SECONDS - 60
    os.utime(folder / kept[0], (old, old))  # referenced: stays however old
    orphan_old, orphan_young = "0" * 32, "1" * 32  # names as the side-file writer makes them
    (folder / orphan_old).write_bytes(b"half a value")
    os.utime(folder / orphan_old, (old, old))
    (folder / orphan_young).write_bytes(b"a write about to commit")
    (folder / "not-ours").write_bytes(b"left by someone else")
    os.utime(folder / "not-ours", (old, old))
    assert backend(db).collect_garbage() == 1
    assert side_files(db) == sorted([*kept, orphan_young, "not-ours"])
    assert db.get_user_value(1, "kept") == BIG


def test_missing_side_file_is_a_clear_error(db: DashDatabase) -> None:
    """A side file deleted behind the database's back raises StorageError naming the folder."""
    db.store_user_value(1, "v", BIG)
    for name in side_files(db):
        os.unlink(os.path.join(backend(db).files.folder, name))
    with pytest.raises(OSError, match=r"side file.*-values"):
        db.get_user_value(1, "v")


def test_readers_racing_a_replacing_writer_see_whole_values(db: DashDatabase) -> None:
    """Readers never see a missing file or a mix while another thread replaces the value."""
    values = [bytes([n]) * 3000 for n in range(1, 6)]
    db.store_user_value(1, "v", values[0])
    done = threading.Event()
    seen: list[bytes] = []

    def write() -> None:
        for round_ in range(60):
            db.store_user_value(1, "v", values[round_ % len(values)])
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set():
        seen.append(db.get_user_value(1, "v"))
    writer.join()
    assert seen
    assert all(value in values for value in seen)
    assert len(side_files(db)) == 1


def test_full_durability_stores_side_files(tmp_path: Path) -> None:
    """With durability='full' a side file is synced before its record and reads back."""
    with DashDatabase(tmp_path / "db.sqlite3", durability="full") as db:
        backend(db).chunk_size = 1024
        db.store_user_value(1, "v", BIG)
        assert db.get_user_value(1, "v") == BIG
        with sqlite3.connect(tmp_path / "db.sqlite3") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
