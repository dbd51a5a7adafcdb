"""Checking and repairing a store: what `check` finds, running nothing, and what `repair`
mends, through the API and the CLI."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from dash_database import DashDatabase
from dash_database.backends.locations import POSTGRES_SCHEMES
from dash_database.backends.memory import MemoryBackend
from dash_database.backends.sqlite.file import FileBackend
from dash_database.cli import EXIT_DAMAGED, main
from dash_database.keys import Key
from dash_database.serialization import Codec

from helpers import (
    KEY,
    Marker,
    OpenDb,
    assert_counters_exact,
    open_face,
    postgres_rows,
    redis_client,
    write_with,
)


def _fill(db: DashDatabase) -> None:
    db._backend.chunk_size = 1024
    db.store_user_value("alice", "cart", [1, 2])
    db.store_user_value("alice", "upload", b"x" * 5000)  # chunks or a side file
    db.store_user_value(7, "note", "hello")


def _damaged_store(folder: Path) -> Path:
    """A signed SQLite store whose side file (alice's "upload") is cut short, and whose
    record of bob's "cart" has one bit flipped; its path."""
    path = folder / "store.sqlite3"
    with DashDatabase(path, secret_key=KEY) as db:
        _fill(db)
        db.store_user_value("bob", "cart", ["b"])
        (side_file,) = Path(db._backend.files.folder).iterdir()  # type: ignore[attr-defined]
        side_file.write_bytes(side_file.read_bytes()[:100])
    with sqlite3.connect(path) as conn:
        (record,) = conn.execute("""SELECT value FROM dash_database WHERE key = '["bob","cart"]'""")
        altered = record[0][:-1] + bytes([record[0][-1] ^ 1])
        conn.execute(
            """UPDATE dash_database SET value = ? WHERE key = '["bob","cart"]'""", (altered,)
        )
    return path


def test_a_healthy_store_checks_healthy_on_every_engine(open_db: OpenDb) -> None:
    """Every value reads, the counters agree: nothing is reported."""
    db = open_db(secret_key=KEY)
    _fill(db)
    report = db.inspect.check()
    assert (report.values, report.problems, report.healthy) == (3, [], True)


@pytest.mark.parametrize("face", ["sync", "async"])
def test_check_finds_missing_damaged_and_miscounted_values(tmp_path: Path, face: str) -> None:
    """A cut-short side file, an altered signed value and a counter gone wrong are each
    reported, with the user and key; nothing else is."""
    path = _damaged_store(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("""UPDATE dash_database_users SET bytes = bytes + 5 WHERE user = '7'""")
    with open_face(face, path, secret_key=KEY) as db:
        report = db.inspect.check()
    found = sorted((p.kind, p.user_id, p.key_name) for p in report.problems)
    assert found == [
        ("counters", 7, None),
        ("damaged", "bob", "cart"),
        ("missing", "alice", "upload"),
    ]
    assert not report.healthy


def test_check_never_runs_what_a_pickle_holds(tmp_path: Path) -> None:
    """A pickle that would run code is parsed, never loaded: the marker file is not made."""
    marker = tmp_path / "ran"
    with DashDatabase(tmp_path / "store.sqlite3") as db:
        write_with(db, Codec("pickle"), "eve", "payload", Marker(marker))
        assert db.inspect.check().healthy
    assert not marker.exists()


def test_the_cli_check_exits_0_when_healthy_and_4_on_damage(tmp_path: Path) -> None:
    """`check` says "healthy" and exits 0; on damage it lists each problem (as JSON with
    --json) and exits 4."""
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path) as db:
        _fill(db)
    out = io.StringIO()
    assert main([str(path), "check"], out=out) == 0
    assert "checked 3 values: healthy" in out.getvalue()
    with sqlite3.connect(path) as conn:
        conn.execute("""UPDATE dash_database SET value = X'4a7b' WHERE key = '[7,"note"]'""")
    out = io.StringIO()
    assert main([str(path), "check", "--json"], out=out) == EXIT_DAMAGED == 4
    report = json.loads(out.getvalue())
    assert report["healthy"] is False
    assert [(p["kind"], p["user"], p["key"]) for p in report["problems"]] == [
        ("damaged", 7, "note"),
        ("counters", 7, None),
    ]


def _miscount(db: DashDatabase, user: Key) -> None:
    """Make the engine's counters of ``user`` wrong, as a bug or a lost update would."""
    engine: Any = db._backend
    if isinstance(engine, FileBackend):
        member = json.dumps(user)
        engine._conn.run(
            'UPDATE "dash_database_users" SET bytes = bytes + 5 WHERE user = ?', (member,)
        )
    elif isinstance(engine, MemoryBackend):
        engine._bytes[user] += 5
    elif engine.location.startswith(POSTGRES_SCHEMES):
        statement = "UPDATE {}.users SET bytes = bytes + 5 WHERE user_id = %s"
        postgres_rows(engine, statement, json.dumps(user))
    else:
        member = json.dumps(user)
        users = engine.open().user_keys(member)[1]
        with redis_client(engine) as client:
            client.hincrby(users, member, 5)


def test_repair_rebuilds_the_counters_on_every_engine(open_db: OpenDb) -> None:
    """Counters gone wrong are found by check and rebuilt by repair; nothing is dropped."""
    db = open_db()
    _fill(db)
    _miscount(db, "alice")
    assert [p.kind for p in db.inspect.check().problems] == ["counters"]
    report = db.repair()
    assert (report.dropped, report.recounted) == ([], True)
    assert db.inspect.check().healthy
    assert_counters_exact(db)


@pytest.mark.parametrize("face", ["sync", "async"])
def test_repair_drops_what_is_gone_or_damaged_and_keeps_the_rest(tmp_path: Path, face: str) -> None:
    """A dry run changes nothing; then the missing and damaged values go, the counters are
    rebuilt, and every other value reads as before."""
    path = _damaged_store(tmp_path)
    with open_face(face, path, secret_key=KEY) as db:
        planned = db.repair(dry_run=True)
        assert sorted((p.user_id, p.key_name) for p in planned.dropped) == [
            ("alice", "upload"),
            ("bob", "cart"),
        ]
        assert len(db.inspect.check().problems) == 2  # the dry run changed nothing
        done = db.repair()
        assert done.dropped == planned.dropped
        assert db.inspect.check().healthy
        assert db.get_user_value("alice", "cart") == [1, 2]
        assert db.get_user_value(7, "note") == "hello"
        assert db.list_stored_user_keys("bob") == []


def test_the_cli_repair_says_what_it_would_do_then_does_it(tmp_path: Path) -> None:
    """`repair --dry-run` lists the values it would drop; `repair` drops them, after which
    `check` exits 0."""
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path) as db:
        _fill(db)
    with sqlite3.connect(path) as conn:
        conn.execute("""UPDATE dash_database SET value = X'4a7b' WHERE key = '[7,"note"]'""")
    out = io.StringIO()
    assert main([str(path), "repair", "--dry-run", "--json"], out=out) == 0
    planned = json.loads(out.getvalue())
    assert (planned["dry_run"], [(d["user"], d["key"]) for d in planned["dropped"]]) == (
        True,
        [(7, "note")],
    )
    out = io.StringIO()
    assert main([str(path), "repair"], out=out) == 0
    assert "dropped 1 values" in out.getvalue()
    assert main([str(path), "check"], out=io.StringIO()) == 0


def test_stats_with_check_counts_damage_and_reports_progress(tmp_path: Path) -> None:
    """stats(check=True) reads every value, calling progress with the running count, and
    counts a damaged one as missing; the CLI's stats --check says the same."""
    path = _damaged_store(tmp_path)
    seen: list[int] = []
    with DashDatabase(path, secret_key=KEY) as db:
        stats = db.inspect.stats(check=True, progress=seen.append)
    assert seen == list(range(1, stats.keys + 1))
    assert stats.missing == 2  # alice's cut-short upload, bob's altered cart
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DASH_DATABASE_SECRET_KEY", KEY.decode())
        assert main([str(path), "stats", "--check", "--json"], out=out) == 0
    assert json.loads(out.getvalue())["missing"] == 2
