"""Per-user counters: exact after every change, quotas that hold under races, cost by users."""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from dash_database import DashDatabase
from dash_database.backends.sqlite import counters as sqlite_counters
from dash_database.backends.sqlite import schema as sql
from dash_database.exceptions import QuotaExceededError

from helpers import assert_counters_exact

DATA = Path(__file__).parent / "data"


Store = tuple[str, dict[str, str]]  # a location, and its Redis prefix or PostgreSQL schema


def _race(store: Store, quotas: dict[str, int], user: str, key: str, size: int) -> Any:
    """In a forked child: open the store, wait for the others, write once; report how it went."""
    with DashDatabase(store[0], **store[1], **quotas) as db:  # type: ignore[arg-type]
        _race.barrier.wait()  # type: ignore[attr-defined]
        try:
            db.store_user_value(user, key, b"x" * size)
        except QuotaExceededError:
            return "refused"
        return "stored"


def _racers(store: Store, quotas: dict[str, int], writes: list[tuple[str, str, int]]) -> list[Any]:
    """Run one write per process, 8 processes released at one instant."""
    context = multiprocessing.get_context("fork")
    _race.barrier = context.Barrier(len(writes))  # type: ignore[attr-defined]
    pool = context.Pool(len(writes))
    try:
        calls = [(store, quotas, *write) for write in writes]
        return pool.starmap(_race, calls, chunksize=1)
    finally:
        # Let the workers end on their own: Pool's __exit__ sends them SIGTERM, which
        # Dash 4.5's handler (installed at import, inherited by a forked child) catches,
        # and CPython may fail to run a Python handler in a child blocked on a lock, so
        # that the worker survives and the join waits forever.
        pool.close()
        pool.join()


def _store(request: pytest.FixtureRequest, engine: str, tmp_path: Path) -> Store:
    """A new, empty store on ``engine``."""
    if engine == "sqlite":
        return str(tmp_path / "race.sqlite3"), {}
    if engine == "postgres":
        return request.getfixturevalue("postgres_url"), {"schema": f"test_{uuid.uuid4().hex}"}
    return request.getfixturevalue("redis_url"), {"prefix": f"test-{uuid.uuid4().hex}:"}


@pytest.mark.parametrize("engine", ["sqlite", "redis", "postgres"])
@pytest.mark.parametrize("limit", ["max_keys_per_user", "max_bytes_per_user", "max_total_bytes"])
def test_eight_racing_processes_never_pass_a_quota(
    engine: str, limit: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """8 processes racing one quota: the limit holds, and each writer stored or was refused."""
    store = _store(request, engine, tmp_path)
    quotas = {
        "max_keys_per_user": {"max_keys_per_user": 10},
        "max_bytes_per_user": {"max_bytes_per_user": 1_000_000},
        "max_total_bytes": {"max_total_bytes": 1_000_000},
    }[limit]
    with DashDatabase(store[0], **store[1]) as db:  # type: ignore[arg-type]
        if limit == "max_keys_per_user":
            for key in range(9):
                db.store_user_value("u", f"old{key}", 1)
            writes = [("u", f"new{n}", 10) for n in range(8)]
        else:
            db.store_user_value("u", "old", b"x" * 700_000)
            # Per user: 8 new keys of one user; in total: 8 new users.
            writes = [
                ("u" if limit == "max_bytes_per_user" else f"u{n}", f"new{n}", 100_000)
                for n in range(8)
            ]
        before = db.stats()
        results = _racers(store, quotas, writes)
        after = db.stats()
        assert sorted(set(results)) <= ["refused", "stored"]
        stored = results.count("stored")
        assert after.keys - before.keys == stored
        if limit == "max_keys_per_user":
            assert (db.user_stats("u").keys, stored) == (10, 1)
        else:
            assert after.bytes <= 1_000_000
            assert stored == 2  # 700,000 bytes and two of about 100,000 fit; a third does not
        assert_counters_exact(db)


WRITER = """
import json, sys
from dash_database import DashDatabase
db = DashDatabase(sys.argv[1], **json.loads(sys.argv[3]))
db._backend.chunk_size = 4096
for index in range(int(sys.argv[2]), 10**9):
    db.store_user_value(index % 7, index % 50, [index] * (3000 if index % 3 == 0 else 1))
    if index % 5 == 0:
        db.delete_user_value(index % 7, (index + 1) % 50)
    print(index, flush=True)
"""


@pytest.mark.parametrize("engine", ["sqlite", "redis", "postgres"])
def test_counters_match_a_recount_after_sigkilled_writers(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Writers SIGKILLed mid-write (big values, deletes) leave counters equal to a recount."""
    location, options = _store(request, engine, tmp_path)
    start = 0
    for rounds in range(8):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, location, str(start), json.dumps(options)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        for _ in range(10 + 7 * rounds):
            start = int(writer.stdout.readline()) + 1
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        with DashDatabase(location, **options) as db:  # type: ignore[arg-type]
            assert db.stats().keys > 0
            assert_counters_exact(db)


def _sqlite_steps(db: DashDatabase, call: Any) -> int:
    """SQLite VM steps that ``call`` spends on the database's reading connections."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    reader = db._backend._conn.reader()  # type: ignore[attr-defined]
    reader.set_progress_handler(count, 1)
    call()
    reader.set_progress_handler(None, 1)
    return steps


def _redis_commands(url: str, call: Any) -> int:
    """Commands the server ran for ``call``, including those inside scripts."""
    client = redis.Redis.from_url(url)

    def total() -> int:
        stats = client.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")

    before = total()
    call()
    return total() - before


def _filled(location: str, prefix: str | None, users: int, keys: int) -> DashDatabase:
    db = DashDatabase(location, prefix=prefix)
    for user in range(users):
        for key in range(keys):
            db.store_user_value(user, key, key)
    return db


@pytest.mark.parametrize("engine", ["sqlite", "redis"])
def test_stats_and_listing_cost_follows_users_not_values(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """stats(), user_stats() and list_users() cost the same on 20 users of 1 or of 40 values."""
    costs: dict[tuple[int, int], list[int]] = {}
    for users, keys in ((20, 1), (20, 40), (60, 1)):
        if engine == "sqlite":
            db = _filled(str(tmp_path / f"{users}-{keys}.sqlite3"), None, users, keys)
            measure = lambda call, db=db: _sqlite_steps(db, call)  # noqa: E731
        else:
            url = request.getfixturevalue("redis_url")
            db = _filled(url, f"test-{uuid.uuid4().hex}:", users, keys)
            measure = lambda call, url=url: _redis_commands(url, call)  # noqa: E731
        with db:
            calls = (db.stats, db.list_users, lambda db=db: db.user_stats(3))
            costs[users, keys] = [measure(call) for call in calls]  # type: ignore[no-untyped-call]
    assert costs[20, 1] == costs[20, 40]
    assert costs[60, 1][0] > costs[20, 1][0]  # stats() does follow the users


def test_a_store_written_before_counters_gets_them_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2.0 file is counted on first open (logging progress), with quotas exact from then on."""
    path = tmp_path / "store.db"
    shutil.copy(DATA / "store-2.0.db", path)
    shutil.copytree(DATA / "store-2.0.db-values", tmp_path / "store.db-values")
    monkeypatch.setattr(sqlite_counters, "BATCH", 1)
    with caplog.at_level(logging.INFO, "dash_database"):
        db = DashDatabase(path, max_keys_per_user=3)
    assert "building counters for" in caplog.text
    with db:
        assert_counters_exact(db)
        stats = db.stats()
        assert stats.keys > 1
        assert stats.bytes > 5000  # the fixture holds a side-file value
        user = db.list_users()[0]
        while db.count_user_values(user) < 3:
            db.store_user_value(user, f"more{db.count_user_values(user)}", 1)
        with pytest.raises(QuotaExceededError):
            db.store_user_value(user, "one too many", 1)
    caplog.clear()
    with caplog.at_level(logging.INFO, "dash_database"), DashDatabase(path) as db:
        assert_counters_exact(db)
    assert "building counters" not in caplog.text  # once


def _totals(path: Path) -> tuple[int | None, int | None]:
    """The store's totals row of a SQLite file, as stored."""
    with sqlite3.connect(path) as conn:
        keys, stored = conn.execute("SELECT keys, bytes FROM dash_database_totals").fetchone()
    conn.close()
    return keys, stored


def test_store_totals_are_kept_from_the_first_write_under_a_total_quota(tmp_path: Path) -> None:
    """A file's totals are unkept until a total quota's first write; then all writers keep them."""
    path = tmp_path / "store.db"
    with DashDatabase(path) as db:
        db.store_user_value("a", "k", b"x" * 100)
        db.store_user_value("a", "gone", 1)
    assert _totals(path) == (None, None)
    with DashDatabase(path, max_total_bytes=10**6) as db:
        db.store_user_value("b", "k", b"y" * 200)
        expected = db.stats()
    assert _totals(path) == (expected.keys, expected.bytes) == (3, expected.bytes)
    with DashDatabase(path) as db:
        db.store_user_value("c", "k", 1)
        db.store_user_value("b", "k", b"z")  # replaced
        db.delete_user_value("a", "gone")
        db.rename_user("c", "d")
        db.delete_all_user_values("a")
        expected = db.stats()
        assert_counters_exact(db)
    assert _totals(path) == (expected.keys, expected.bytes) == (2, expected.bytes)


def test_a_2_2_0_store_gets_this_versions_triggers_and_keeps_its_totals(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file made by 2.2.0 is not recounted on first open; its totals stay kept and exact."""
    path = tmp_path / "store.db"
    shutil.copy(DATA / "store-2.2.0.db", path)
    monkeypatch.setattr(sqlite_counters, "BATCH", 1)
    with caplog.at_level(logging.INFO, "dash_database"), DashDatabase(path) as db:
        assert_counters_exact(db)
        db.store_user_value("new", "k", b"x" * 10)
        db.delete_user_value("alice", "a")
        expected = db.stats()
    assert "building counters" not in caplog.text
    assert _totals(path) == (expected.keys, expected.bytes) == (7, expected.bytes)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sql.VERSION
        (trigger,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'dash_database_inserted'"
        ).fetchone()
    conn.close()
    assert "bytes IS NOT NULL" in trigger


def test_a_2_2_1_store_gets_the_one_statement_write_and_keeps_everything(tmp_path: Path) -> None:
    """A file made by 2.2.1 keeps its values, counters and activity, and gains the view
    through which a write records its user's activity in one statement."""
    path = tmp_path / "store.db"
    shutil.copy(DATA / "store-2.2.1.db", path)
    with DashDatabase(path) as db:
        assert_counters_exact(db)
        assert db.user("alice") == {"a": 1, "b": "two"}
        assert db.get_user_value(7, "n") == [1, 2, 3]
        assert db.inspect.last_activity("bob") is not None
        db.store_user_value("new", "k", 1)
        assert db.inspect.last_activity("new") is not None
        assert_counters_exact(db)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == sql.VERSION
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {"dash_database_put_seen", "dash_database_put_seen_insert"} <= names


def test_a_writer_that_does_not_fill_the_counters_is_refused(tmp_path: Path) -> None:
    """sqlitedict, or a 2.1 process, writing the file gets a clear error, not wrong counters."""
    path = tmp_path / "store.sqlite3"
    DashDatabase(path).close()
    with (
        sqlite3.connect(path) as conn,
        pytest.raises(sqlite3.IntegrityError, match=r"2\.2 or later"),
    ):
        conn.execute("REPLACE INTO dash_database (key, value) VALUES ('[1,1]', X'70')")
