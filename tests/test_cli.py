"""The operator CLI, against a real SQLite file and a real redis-server."""

from __future__ import annotations

import argparse
import datetime
import io
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dash_database import DashDatabase
from dash_database.cli import ProgressBar, main, parse_duration

from helpers import Clock, require_redis_server

DAY = 86400.0


class Store:
    """A store the CLI is pointed at: a database to fill and the CLI's location arguments."""

    def __init__(self, db: DashDatabase, location: list[str], reopen: dict[str, str]) -> None:
        self.db, self.location, self.reopen = db, location, reopen

    def run(self, *args: str) -> tuple[int, str, str]:
        """Run the CLI in this process; return (exit code, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        old, sys.stderr = sys.stderr, err
        try:
            code = main([*self.location, *args], out=out)
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        finally:
            sys.stderr = old
        return code, out.getvalue(), err.getvalue()


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Store]:
    """Two users written 10 days apart, in a SQLite file, on redis-server or on PostgreSQL."""
    if request.param == "sqlite":
        path = str(tmp_path / "cli.sqlite3")
        db = DashDatabase(path)
        made = Store(db, [path], {"db_location": path})
    elif request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        schema = f"test_cli_{uuid.uuid4().hex}"
        db = DashDatabase(url, schema=schema)
        made = Store(db, [url, "--schema", schema], {"db_location": url, "schema": schema})
    else:
        require_redis_server()
        url = request.getfixturevalue("redis_url")
        prefix = f"test-cli-{uuid.uuid4().hex}:"
        db = DashDatabase(url, prefix=prefix)
        made = Store(db, [url, "--prefix", prefix], {"db_location": url, "prefix": prefix})
    db.store_user_value("old", "note", "x" * 100)
    clock.advance(10 * DAY)
    db.store_user_value("alice", "theme", "dark")
    db.store_user_value("alice", "frame", {"rows": list(range(1000))})
    db.store_user_value("alice", "when", datetime.datetime(2026, 11, 29, 12, 0))
    db.store_user_value(42, 7, 3.5)
    with DashDatabase(serializer="json", **made.reopen) as shared:  # type: ignore[arg-type]
        shared.store_user_value("alice", "settings", {"lang": "fr"})
    yield made
    db.close()


def test_stats(store: Store) -> None:
    """stats prints users, keys and bytes; --json gives the same as numbers."""
    code, out, _ = store.run("stats")
    assert code == 0
    assert out.splitlines()[:2] == ["users: 3", "keys: 6"]
    code, out, _ = store.run("stats", "--json")
    data = json.loads(out)
    assert (data["users"], data["keys"]) == (3, 6)
    assert data["bytes"] == store.db.stats().bytes > 2000


def test_users_sorted(store: Store) -> None:
    """users lists sizes and last activity, sortable, as text or JSON."""
    code, out, _ = store.run("users")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["USER", "KEYS", "BYTES"]
    assert lines[1].split()[0] == "old"  # least recent first
    code, out, _ = store.run("users", "--sort", "bytes", "--reverse", "--json")
    data = json.loads(out)
    assert [row["user"] for row in data] == ["alice", "old", 42]
    assert data[0]["keys"] == 4
    assert data[0]["last_activity"] == "2027-01-25T08:00:00+00:00"
    assert data[1]["last_activity"] == "2027-01-15T08:00:00+00:00"


def test_keys(store: Store) -> None:
    """keys lists one user's keys with sizes; an int id is matched from its digits."""
    code, out, _ = store.run("keys", "alice")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["frame", "settings", "theme", "when"]
    code, out, _ = store.run("keys", "42", "--json")
    assert json.loads(out) == [{"key": 7, "bytes": json.loads(out)[0]["bytes"]}]
    assert store.run("keys", "nobody") == (1, "", "dash-database: no user 'nobody' in this store\n")


def test_show_plain_values_without_unpickling_code(store: Store) -> None:
    """Plain pickled data is shown without the flag; anything else is named, never loaded."""
    code, out, _ = store.run("show", "alice", "frame")
    assert code == 0
    assert "type: dict" in out
    assert "preview: {'rows': [0, 1, 2" in out
    assert len(out.splitlines()[-1]) <= len("preview: ") + 200
    code, out, _ = store.run("show", "alice", "when")
    assert "type: datetime.datetime" in out
    assert "not unpickled" in out
    code, out, _ = store.run("show", "alice", "when", "--unsafe-unpickle")
    assert "type: datetime.datetime" in out  # the same name with and without the flag
    assert "preview: datetime.datetime(2026, 11, 29" in out
    code, out, _ = store.run("show", "alice", "settings", "--json")
    assert json.loads(out)["preview"] == "{'lang': 'fr'}"
    assert json.loads(out)["serializer"] == "json"
    code, out, _ = store.run("show", "42", "7")
    assert "type: float" in out
    code, _, err = store.run("show", "alice", "missing")
    assert (code, err) == (1, "dash-database: user 'alice' has no key 'missing'\n")


def test_purge_older_than(store: Store) -> None:
    """purge --older-than deletes users idle longer than that, and counts them."""
    assert store.run("purge", "--older-than", "30d") == (0, "purged 0 users\n", "")
    code, out, err = store.run("purge", "--older-than", "5d", "--json")
    assert (code, json.loads(out), err) == (0, {"purged_users": 1}, "")
    assert "old" not in store.db.list_users()
    assert sorted(map(str, store.db.list_users())) == ["42", "alice"]


def test_delete_user(store: Store) -> None:
    """delete-user removes one user; a second time it is not found."""
    assert store.run("delete-user", "alice") == (0, "deleted 4 values\n", "")
    assert store.db.list_stored_user_keys("alice") == []
    assert store.run("delete-user", "alice")[0] == 1


def test_bad_arguments_give_one_line_and_exit_2(tmp_path: Path) -> None:
    """Bad arguments exit 2 with a one-line error that points to the help, never a traceback."""
    DashDatabase(tmp_path / "ok.sqlite3").close()
    cases = [
        [str(tmp_path / "missing.sqlite3"), "stats"],
        [str(tmp_path / "ok.sqlite3"), "purge", "--older-than", "soon"],
        [str(tmp_path / "ok.sqlite3"), "frobnicate"],
        [str(tmp_path / "ok.sqlite3"), "--prefix", "x:", "stats"],
        [str(tmp_path / "ok.sqlite3"), "show", "alice"],
        [str(tmp_path / "ok.sqlite3"), "export"],
    ]
    for args in cases:
        done = subprocess.run(
            [sys.executable, "-m", "dash_database", *args], capture_output=True, text=True
        )
        assert done.returncode == 2, args
        assert done.stdout == ""
        assert done.stderr.startswith("dash-database: "), done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr


def test_unreachable_store_exits_3() -> None:
    """A store that fails (no Redis server there) exits 3 with one line, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "dash_database", "redis://127.0.0.1:1/0", "stats"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3
    assert done.stderr.startswith("dash-database: redis://127.0.0.1:1/0: cannot reach")
    assert len(done.stderr.splitlines()) == 1


def test_installed_command_and_quiet_pipes(tmp_path: Path) -> None:
    """The dash-database script is installed; in a pipe, purge prints no progress bar."""
    path = tmp_path / "piped.sqlite3"
    with DashDatabase(path) as db:
        db.store_user_value("u", "k", 1)
    script = Path(sys.executable).with_name("dash-database")
    done = subprocess.run(
        [str(script), str(path), "purge", "--older-than", "1s"], capture_output=True, text=True
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "purged 0 users\n", "")


def test_progress_bar_only_on_a_terminal() -> None:
    """The progress bar draws on a terminal and stays silent elsewhere."""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = ProgressBar("purging", 4, stream)
        for done in range(1, 5):
            bar(done)
    assert terminal.getvalue().endswith("\rpurging [" + "#" * 30 + "] 4/4\n")
    assert "2/4" in terminal.getvalue()
    assert pipe.getvalue() == ""


def test_durations_need_a_unit() -> None:
    """Durations take s, m, h, d and w; a bare number is refused with the fix in the message."""
    assert [parse_duration(text) for text in ("90s", "15m", "2h", "30d", "1w")] == [
        90,
        900,
        7200,
        30 * DAY,
        7 * DAY,
    ]
    with pytest.raises(argparse.ArgumentTypeError, match="'30' has no unit: write 30s, 30m"):
        parse_duration("30")


def test_inspecting_leaves_last_activity_unchanged(store: Store, clock: Clock) -> None:
    """users, keys, show and export never move a user's last activity (an hour back here)."""
    before = store.db.inspect.last_activity("alice")
    assert before is not None
    clock.advance(3600)
    for command in (
        ["users"],
        ["keys", "alice"],
        ["show", "alice", "theme"],
        ["export", "alice"],
        ["export", "--all"],
        ["purge", "--older-than", "1s", "--dry-run"],
        ["stats"],
    ):
        assert store.run(*command)[0] == 0, command
    assert store.db.inspect.last_activity("alice") == before
    assert store.db.user_stats("alice").last_activity == before
