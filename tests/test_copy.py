"""Copying a store to another, as stored: file to Redis and back, resumable, source untouched."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from dash_database import DashDatabase

from helpers import Clock, open_face, require_redis_server

BIG = bytes(range(256)) * (9 * 1024 * 1024 // 256 + 1)  # over 8 MiB: side file or chunks


def open_store(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, name: str
) -> DashDatabase:
    """A fresh store: a SQLite file, a fresh prefix on the test redis-server, or a fresh
    schema on the test PostgreSQL server."""
    if kind == "sqlite":
        return DashDatabase(tmp_path / f"{name}.sqlite3")
    if kind == "postgres":
        schema = f"test_{name}_{uuid.uuid4().hex}"
        return DashDatabase(request.getfixturevalue("postgres_url"), schema=schema)
    require_redis_server()
    return DashDatabase(
        request.getfixturevalue("redis_url"), prefix=f"test-{name}-{uuid.uuid4().hex}:"
    )


def snapshot(db: DashDatabase) -> dict[Any, Any]:
    """Every value as stored (tag and SHA-256 of its bytes), and every user's activity."""
    engine = db._backend
    values = {}
    for user in engine.users():
        for key in engine.keys(user, None)[0]:
            tag, pieces = engine.read_raw(user, key)  # type: ignore[misc]
            values[(user, key)] = (tag, hashlib.sha256(b"".join(pieces)).hexdigest())
    return {"values": values, "activity": engine.sessions()}


@pytest.mark.parametrize(
    ("source_kind", "destination_kind"),
    [
        ("sqlite", "sqlite"),
        ("sqlite", "redis"),
        ("redis", "sqlite"),
        ("redis", "redis"),
        ("sqlite", "postgres"),
        ("postgres", "redis"),
        ("redis", "postgres"),
        ("postgres", "sqlite"),
    ],
)
def test_copy_in_each_direction(
    source_kind: str,
    destination_kind: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    clock: Clock,
) -> None:
    """Small, large and int-keyed values and activity arrive; the source does not change."""
    source = open_store(source_kind, tmp_path, request, "source")
    destination = open_store(destination_kind, tmp_path, request, "destination")
    source.store_user_value("alice", "theme", "dark")
    source.store_user_value("alice", "big", BIG)
    clock.advance(100)
    source.store_user_value(42, 7, {"n": (1, 2)})
    with DashDatabase(**_reopen(source), serializer="json") as json_face:
        json_face.store_user_value("bob", "settings", {"lang": "fr"})
    before = snapshot(source)
    report = source.copy_to(destination)
    assert (report.users, report.copied, report.unchanged) == (3, 4, 0)
    assert snapshot(source) == before  # nothing read changed anything
    assert snapshot(destination) == before  # as stored, byte for byte, with the activity
    assert destination.get_user_value("alice", "big") == BIG
    assert destination.get_user_value(42, 7) == {"n": (1, 2)}
    assert destination.inspect.last_activity(42) == 1_800_000_100.0
    again = source.copy_to(destination)
    assert (again.copied, again.unchanged) == (0, 4)
    source.close()
    destination.close()


def _reopen(db: DashDatabase) -> dict[str, Any]:
    """The arguments that open ``db``'s store again."""
    engine = db._backend
    if engine.location.startswith("redis"):
        return {"db_location": engine._server.client(), "prefix": engine._prefix}  # type: ignore[attr-defined]
    if engine.location.startswith("postgresql"):
        return {"db_location": engine.location, "schema": engine.schema}  # type: ignore[attr-defined]
    return {"db_location": engine.location}


@pytest.mark.parametrize("face", ["sync", "async"])
def test_users_overwrite_and_kept_values(tmp_path: Path, face: str) -> None:
    """--users limits the copy; a differing value is kept unless overwrite is asked."""
    with (
        open_face(face, tmp_path / "s.sqlite3") as source,
        open_face(face, tmp_path / "d.sqlite3") as dest,
    ):
        for user in ("a", "b", "c"):
            source.store_user_value(user, "k", f"{user} at the source")
        dest.store_user_value("a", "k", "a at the destination")
        report = source.copy_to(dest, users=["a", "b", "nobody"])
        assert (report.users, report.copied, report.kept) == (2, 1, 1)
        assert dest.list_users() == ["a", "b"]
        assert dest.get_user_value("a", "k") == "a at the destination"
        report = source.copy_to(dest, users=["a"], overwrite=True)
        assert report.replaced == 1
        assert dest.get_user_value("a", "k") == "a at the source"


def test_the_cli_copy_killed_halfway_then_rerun_finishes_the_job(tmp_path: Path) -> None:
    """SIGKILL a copy of 3,000 users halfway; a rerun makes the destination equal the source."""
    source_path, destination_path = tmp_path / "s.sqlite3", tmp_path / "d.sqlite3"
    with DashDatabase(source_path) as source:
        for user in range(3000):
            source.store_user_value(f"user-{user:04d}", "note", f"note {user}")
        expected = snapshot(source)
    command = [
        sys.executable,
        "-m",
        "dash_database",
        str(source_path),
        "copy",
        str(destination_path),
    ]
    copying = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    copied = 0
    deadline = time.monotonic() + 60
    while not 100 < copied < 3000 and time.monotonic() < deadline and copying.poll() is None:
        try:
            with sqlite3.connect(destination_path) as conn:
                copied = conn.execute("SELECT count(*) FROM dash_database").fetchone()[0]
        except sqlite3.Error:
            copied = 0  # not created yet
    copying.send_signal(signal.SIGKILL)
    copying.wait()
    assert 100 < copied < 3000, "the copy was not caught halfway"
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, check=True)
    assert '"unchanged": ' in done.stdout
    with DashDatabase(destination_path) as destination:
        assert snapshot(destination)["values"] == expected["values"]


def test_the_cli_copies_some_users_to_another_redis_prefix(redis_url: str, tmp_path: Path) -> None:
    """copy --users to a Redis prefix, with --json output, leaves the other users out."""
    path = tmp_path / "s.sqlite3"
    with DashDatabase(path) as source:
        for user in ("a", "b", "c"):
            source.store_user_value(user, "k", user)
    prefix = f"test-copy-{uuid.uuid4().hex}:"
    command = [sys.executable, "-m", "dash_database", str(path), "copy", redis_url]
    done = subprocess.run(
        [*command, "--to-prefix", prefix, "--users", "a", "c", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"copied": 2' in done.stdout
    assert done.stderr == ""  # no progress bar in a pipe
    with DashDatabase(redis_url, prefix=prefix) as destination:
        assert destination.list_users() == ["a", "c"]
        destination.delete_all_user_values("a")
        destination.delete_all_user_values("c")
