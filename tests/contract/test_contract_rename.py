"""rename_user: a session's values move to a new id at login, atomically, on every engine."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from dash_database import DashDatabase
from dash_database.exceptions import DeserializationError, UserExistsError

from helpers import KEY, Clock, OpenDb, large_bodies

SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(params=["unsigned", "signed"])
def db(open_db: OpenDb, request: pytest.FixtureRequest) -> DashDatabase:
    """A fresh database of the engine under test, without and with a ``secret_key``."""
    return open_db(secret_key=KEY) if request.param == "signed" else open_db()


def test_every_value_and_the_activity_move(db: DashDatabase, clock: Clock) -> None:
    """All values, with their types, and the last activity go to the new id; none stays."""
    db.store_user_value("guest", "cart", ["apple", "pear"])
    db.store_user_value("guest", 7, {"n": 7})
    db.store_user_value("bystander", "cart", "theirs")
    assert db.rename_user("guest", "alice") == 2
    assert dict(db.user("alice")) == {7: {"n": 7}, "cart": ["apple", "pear"]}
    assert db.list_stored_user_keys("guest") == []
    assert db.user_stats("alice").last_activity == 1_800_000_000.0
    assert db.inspect.last_activity("guest") is None
    assert db.get_user_value("bystander", "cart") == "theirs"
    assert db.list_users() == ["alice", "bystander"]


def test_a_target_with_values_is_refused_and_nothing_changes(db: DashDatabase) -> None:
    """UserExistsError (a ValueError) when the new id has values; both users stay as they were."""
    db.store_user_value("guest", "k", "guest's")
    db.store_user_value("alice", "k", "alice's")
    with pytest.raises(UserExistsError, match="user_id='alice' already has values") as info:
        db.rename_user("guest", "alice")
    assert isinstance(info.value, ValueError)
    assert db.get_user_value("guest", "k") == "guest's"
    assert db.get_user_value("alice", "k") == "alice's"


def test_the_same_id_and_a_missing_source(db: DashDatabase) -> None:
    """The same id raises ValueError; a source with no values moves 0; 1 and "1" differ."""
    with pytest.raises(ValueError, match="both 'guest'"):
        db.rename_user("guest", "guest")
    assert db.rename_user("nobody", "alice") == 0
    assert db.list_users() == []
    db.store_user_value(1, "k", "int user")
    assert db.rename_user(1, "1") == 1
    assert db.get_user_value("1", "k") == "int user"


def test_large_values_move_without_a_copy(db: DashDatabase) -> None:
    """A value in side files or chunks moves as it is, its stored data untouched, and reads
    back whole (signed: bound to the new id)."""
    db._backend.chunk_size = 1024
    big = bytes(range(256)) * 40
    db.store_user_value("guest", "big", big)
    db.store_user_value("guest", "small", [1, 2])
    before, bodies = db.inspect.key_sizes("guest"), large_bodies(db)
    assert bodies  # the value is in side files or chunks
    assert db.rename_user("guest", "alice") == 2
    assert large_bodies(db) == bodies  # neither read nor rewritten: the same files or chunks
    assert db.get_user_value("alice", "big") == big
    assert db.get_user_value("alice", "small") == [1, 2]
    assert db.inspect.key_sizes("alice") == before
    db.store_user_value("alice", "big", b"replaced")  # the moved value's pieces can still go
    assert db.get_user_value("alice", "big") == b"replaced"


def keep_writing(location: Any, prefix: str | None, user: str, stop: str, out: str) -> None:
    """Write keys 0, 1, 2... of ``user``, signed, until the file ``stop`` exists; record each
    acknowledged one in ``out``."""
    options: dict[str, Any] = {"prefix": prefix} if prefix else {}
    with DashDatabase(location, secret_key=KEY, **options) as db, open(out, "w") as acked:
        for n in range(10**7):
            if n % 20 == 0 and Path(stop).exists():
                return
            db.store_user_value(user, n, n)
            acked.write(f"{n}\n")
            acked.flush()


def wait_for_growth(path: Path, size: int) -> None:
    """Busy-wait until ``path`` holds ``size`` bytes: the writer is well under way."""
    while not path.exists() or path.stat().st_size < size:
        pass  # a real race with another process, not a sleep


@pytest.mark.parametrize("how", ["threads", "processes"])
@pytest.mark.parametrize("engine", ["sqlite-path", "redis"])
def test_a_concurrent_writer_loses_nothing(
    how: str, engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Writes racing a rename land before it (and move) or after it; none is lost."""
    if engine == "redis":
        location: Any = request.getfixturevalue("redis_url")
        prefix: str | None = f"test-rename-{uuid.uuid4().hex}:"
    else:
        location, prefix = str(tmp_path / "race.sqlite3"), None
    options: dict[str, Any] = {"prefix": prefix} if prefix else {}
    with DashDatabase(location, secret_key=KEY, **options) as db:
        db.store_user_value("guest", "seed", 0)
        out, stop = tmp_path / "acked.txt", tmp_path / "stop"
        args = (location, prefix, "guest", str(stop), str(out))
        if how == "threads":
            worker: Any = threading.Thread(target=keep_writing, args=args)
        else:
            worker = SPAWN.Process(target=keep_writing, args=args)
        worker.start()
        wait_for_growth(out, 200)
        db.rename_user("guest", "alice")
        wait_for_growth(out, out.stat().st_size + 200)  # writes after the rename too
        stop.touch()
        worker.join(timeout=120)
        acked = {int(line) for line in out.read_text().split()}
        moved = set(db.list_stored_user_keys("alice")) - {"seed"}
        after = set(db.list_stored_user_keys("guest"))
        assert acked == moved | after
        assert all(db.get_user_value("alice", key) == key for key in moved)  # signed, rebound
        assert moved  # the rename did land in the middle
        assert after
        assert not moved & after


def test_a_signed_value_moved_by_hand_stays_refused_after_a_rename(open_db: OpenDb) -> None:
    """A record copied to another user without the key is not laundered by renaming that user."""
    db = open_db(secret_key=KEY)
    db.store_user_value("alice", "role", "user")
    engine = db._backend
    engine.write_raw("mallory", "role", *engine.read_raw("alice", "role"))  # type: ignore[misc]
    assert db.rename_user("mallory", "mallory-2") == 1
    with pytest.raises(DeserializationError, match="altered, or moved"):
        db.get_user_value("mallory-2", "role")
    assert db.rename_user("alice", "alice-2") == 1
    assert db.get_user_value("alice-2", "role") == "user"
