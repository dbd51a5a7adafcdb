"""Where data lives: private temporary files, memory, and checked file paths."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from dash_database import DashDatabase
from dash_database.exceptions import InvalidLocationError


def mode(path: str) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(os.stat(path).st_mode)


def test_temporary_file_is_private_and_removed_on_close() -> None:
    """``None`` makes a 0600 file in a 0700 folder; close removes both and the side files."""
    db = DashDatabase()
    path = db._backend.location
    folder = os.path.dirname(path)
    db.store_user_value(1, "k", 1)
    assert mode(folder) == 0o700
    assert mode(path) == 0o600
    assert os.path.exists(path + "-wal")
    assert mode(path + "-wal") == 0o600
    db.close()
    assert not os.path.exists(folder)


def test_temporary_file_is_removed_when_leaving_with() -> None:
    """Leaving a ``with`` block removes the temporary folder."""
    with DashDatabase() as db:
        folder = os.path.dirname(db._backend.location)
        assert os.path.isdir(folder)
    assert not os.path.exists(folder)


def test_temporary_file_is_removed_at_interpreter_exit() -> None:
    """A temporary database never closed is still removed when Python exits."""
    code = (
        "from dash_database import DashDatabase\n"
        "db = DashDatabase()\n"
        "db.store_user_value(1, 'k', 'v')\n"
        "print(db._backend.location)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    path = done.stdout.strip()
    assert path.endswith("dash_database.sqlite3")
    assert not os.path.exists(os.path.dirname(path))


def test_each_temporary_or_memory_database_is_separate() -> None:
    """Two ``None`` or two ``":memory:"`` databases never share data."""
    for location in (None, ":memory:"):
        with DashDatabase(location) as first, DashDatabase(location) as second:
            first.store_user_value(1, "k", "first")
            assert second.get_user_value(1, "k") is None


def test_a_path_is_shared_by_every_instance(tmp_path: Path) -> None:
    """Two instances on one path (str or PathLike) see each other's committed writes."""
    path = tmp_path / "shared.sqlite3"
    with DashDatabase(path) as first, DashDatabase(str(path)) as second:
        first.store_user_value(1, "k", "v")
        assert second.get_user_value(1, "k") == "v"
        second.delete_all_user_values(1)
        assert first.list_stored_user_keys(1) == []


def test_missing_folder_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    """A path in a missing folder raises naming the path, and creates nothing."""
    path = tmp_path / "missing" / "db.sqlite3"
    with pytest.raises(InvalidLocationError, match="does not exist; create it first") as info:
        DashDatabase(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert not (tmp_path / "missing").exists()


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_non_database_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    """An existing file that is not SQLite raises naming it and is not modified."""
    path = tmp_path / "notes.txt"
    path.write_text("my notes, not a database")
    with pytest.raises(InvalidLocationError, match="is not a SQLite database") as info:
        DashDatabase(path)
    assert str(path) in str(info.value)
    assert path.read_text() == "my notes, not a database"
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_folder_is_refused(tmp_path: Path) -> None:
    """A folder as location raises and suggests a file path inside it."""
    with pytest.raises(InvalidLocationError, match="is a folder"):
        DashDatabase(tmp_path)


def test_empty_existing_file_becomes_a_database(tmp_path: Path) -> None:
    """An empty file (e.g. from ``touch``) is a valid new database."""
    path = tmp_path / "empty.sqlite3"
    path.touch()
    with DashDatabase(path) as db:
        db.store_user_value(1, "k", 1)
    with DashDatabase(path) as db:
        assert db.get_user_value(1, "k") == 1
