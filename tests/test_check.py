"""Checking a store: what `db.inspect.check()` and the CLI's `check` find, running nothing."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

from dash_database import DashDatabase
from dash_database.cli import EXIT_DAMAGED, main
from dash_database.serialization import Codec

from helpers import KEY, Marker, OpenDb, write_with


def _fill(db: DashDatabase) -> None:
    db._backend.chunk_size = 1024
    db.store_user_value("alice", "cart", [1, 2])
    db.store_user_value("alice", "upload", b"x" * 5000)  # chunks or a side file
    db.store_user_value(7, "note", "hello")


def test_a_healthy_store_checks_healthy_on_every_engine(open_db: OpenDb) -> None:
    """Every value reads, the counters agree: nothing is reported."""
    db = open_db(secret_key=KEY)
    _fill(db)
    report = db.inspect.check()
    assert (report.values, report.problems, report.healthy) == (3, [], True)


def test_check_finds_missing_damaged_and_miscounted_values(tmp_path: Path) -> None:
    """A cut-short side file, an altered signed value and a counter gone wrong are each
    reported, with the user and key; nothing else is."""
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path, secret_key=KEY) as db:
        _fill(db)
        db.store_user_value("bob", "cart", ["b"])
        folder = Path(db._backend.files.folder)  # type: ignore[attr-defined]
        (side_file,) = folder.iterdir()
        side_file.write_bytes(side_file.read_bytes()[:100])
    with sqlite3.connect(path) as conn:
        (record,) = conn.execute("""SELECT value FROM dash_database WHERE key = '["bob","cart"]'""")
        altered = record[0][:-1] + bytes([record[0][-1] ^ 1])
        conn.execute(
            """UPDATE dash_database SET value = ? WHERE key = '["bob","cart"]'""", (altered,)
        )
        conn.execute("""UPDATE dash_database_users SET bytes = bytes + 5 WHERE user = '7'""")
    with DashDatabase(path, secret_key=KEY) as db:
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
