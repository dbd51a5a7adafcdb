"""The operator CLI you can trust: purge with units and a dry run, plain values, a real export."""

from __future__ import annotations

import contextlib
import io
import json
import math
import pathlib
import sqlite3
import struct
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dash_database import DashDatabase
from dash_database.cli import main

from helpers import Clock, require_redis_server

DAY = 86400.0


class Touches:
    """A value whose unpickling creates a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


def run(location: list[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process; return (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([*location, *args], out=out)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(params=["sqlite", "redis"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> Iterator[tuple[DashDatabase, list[str]]]:
    """A store holding users idle for 40, 10 and 0 days, on a file or on redis-server."""
    if request.param == "sqlite":
        path = str(tmp_path / "ops.sqlite3")
        db, location = DashDatabase(path), [path]
    else:
        require_redis_server()
        prefix = f"test-ops-{uuid.uuid4().hex}:"
        db = DashDatabase(request.getfixturevalue("redis_url"), prefix=prefix)
        location = [request.getfixturevalue("redis_url"), "--prefix", prefix]
    for user, idle_days in (("ancient", 40), ("week-old", 10), ("today", 0)):
        clock.now = 1_800_000_000.0 - idle_days * DAY
        db.store_user_value(user, "note", f"{user}'s note")
    clock.now = 1_800_000_000.0
    yield db, location
    db.close()


def test_purge_needs_a_unit_has_a_dry_run_and_then_purges(
    store: tuple[DashDatabase, list[str]],
) -> None:
    """A bare number exits 2; --dry-run lists who would go and deletes nothing; then it purges."""
    db, location = store
    code, out, err = run(location, "purge", "--older-than", "30")
    assert (code, out) == (2, "")
    assert "'30' has no unit: write 30s, 30m, 30h, 30d or 30w" in err
    assert len(err.splitlines()) == 1
    code, out, _ = run(location, "purge", "--older-than", "7d", "--dry-run")
    assert code == 0
    assert out.splitlines()[0] == "would purge 2 users (dry run: nothing was deleted)"
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["ancient", "week-old"]
    code, out, _ = run(location, "purge", "--older-than", "30d", "--dry-run", "--json")
    assert json.loads(out)["would_purge"] == 1
    assert json.loads(out)["users"][0]["user"] == "ancient"
    assert db.list_users() == ["ancient", "today", "week-old"]
    assert run(location, "purge", "--older-than", "7d") == (0, "purged 2 users\n", "")
    assert db.list_users() == ["today"]


def test_the_plain_unpickler_refuses_code(
    store: tuple[DashDatabase, list[str]], tmp_path: Path
) -> None:
    """A pickle that would run code is not loaded by show or export without the flag."""
    db, location = store
    marker = tmp_path / "code-ran"
    db.store_user_value("today", "trap", Touches(marker))
    for command in (["show", "today", "trap"], ["export", "today"]):
        code, out, _ = run(location, *command)
        assert code == 0
        assert "not unpickled" in out
        assert "pathlib.Path.touch" in out  # named from the opcodes, never called
    assert not marker.exists()
    run(location, "show", "today", "trap", "--unsafe-unpickle")
    assert marker.exists()  # the flag does what it says


def test_a_crafted_length_is_refused_cheaply(tmp_path: Path) -> None:
    """A stored stream that claims 4 GiB fails show at once, growing the reader by little."""
    path = tmp_path / "crafted.sqlite3"
    with DashDatabase(path) as db:
        db.store_user_value("u", "k", "v")
    crafted = b"P\x80\x05\x95" + struct.pack("<Q", 2**32) + b"\x8e" + struct.pack("<Q", 2**32)
    with sqlite3.connect(path) as conn:
        conn.execute('UPDATE dash_database SET value = ? WHERE key = \'["u","k"]\'', (crafted,))
    script = (
        "import resource, sys\n"
        "from dash_database.cli import main\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"code = main([{str(path)!r}, 'show', 'u', 'k'])\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(code, grown)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    code, grown_kib = map(int, done.stdout.split())
    assert code == 3, done.stderr
    assert "cannot be read back" in done.stderr
    assert grown_kib < 64 * 1024


def test_export_holds_the_data(store: tuple[DashDatabase, list[str]]) -> None:
    """JSON values as they are, typed wrappers, a whole DataFrame, and a named leftover."""
    pd = pytest.importorskip("pandas")
    db, location = store
    frame = pd.DataFrame({"x": range(1000), "y": [f"row {i}" for i in range(1000)]})
    frame.index = frame.index * 2
    db.store_user_value("today", "plain", {"a": [1, 2.5, None, True], "b": "text"})
    db.store_user_value("today", "typed", (1, {2, 3}, b"\x00\xff", {1: "one"}, math.nan))
    db.store_user_value("today", "frame", frame)
    db.store_user_value("today", "odd", 1 + 2j)
    code, out, _ = run(location, "export", "today", "--unsafe-unpickle")
    assert code == 0
    [user] = json.loads(out)["users"]
    values = {value["key"]: value for value in user["values"]}
    assert values["plain"]["value"] == {"a": [1, 2.5, None, True], "b": "text"}
    assert values["typed"]["value"] == {
        "$type": "tuple",
        "items": [
            1,
            {"$type": "set", "items": [2, 3]},
            {"$type": "bytes", "base64": "AP8="},
            {"$type": "dict", "items": [[1, "one"]]},
            {"$type": "float", "value": "nan"},
        ],
    }
    exported = values["frame"]["value"]
    assert exported["$type"] == "pandas.DataFrame"
    assert exported["columns"] == ["x", "y"]
    assert exported["index"] == list(range(0, 2000, 2))
    assert len(exported["data"]) == 1000
    assert exported["data"][999] == [999, "row 999"]
    frame_type = values["frame"]["type"]
    assert frame_type in ("pandas.DataFrame", "pandas.core.frame.DataFrame")  # pandas 3, 2
    assert values["odd"]["value"]["$type"] == "unsupported"
    assert values["odd"]["value"]["type"] == "complex"
    code, out, _ = run(location, "export", "today")  # without the flag: plain data only
    values = {v["key"]: v for v in json.loads(out)["users"][0]["values"]}
    assert values["typed"]["value"]["$type"] == "tuple"
    assert "value" not in values["frame"]
    assert values["frame"]["type"] == frame_type  # the same name with and without the flag


class CountingSink(io.TextIOBase):
    """A text stream that only counts what is written, as a pipe to a file would."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, text: str) -> int:
        self.size += len(text)
        return len(text)


def test_export_all_streams_10000_users_in_bounded_memory(tmp_path: Path) -> None:
    """--all over 10,000 users writes them all while Python's heap stays under 10 MB."""
    path = tmp_path / "many.sqlite3"
    with DashDatabase(path) as db:
        for user in range(10_000):
            db.store_user_value(f"user-{user:05d}", "note", "x" * 200)
    sink = CountingSink()
    tracemalloc.start()
    try:
        assert main([str(path), "export", "--all"], out=sink) == 0  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.size > 10_000 * 200
    assert peak < 10 * 1024 * 1024


def test_json_errors_are_json(tmp_path: Path) -> None:
    """With --json every outcome is JSON on stdout, errors too, argument errors included."""
    path = tmp_path / "j.sqlite3"
    DashDatabase(path).close()
    for args, expected in [
        ([str(path), "keys", "nobody", "--json"], 1),
        ([str(path), "purge", "--older-than", "30", "--json"], 2),
        ([str(path), "frobnicate", "--json"], 2),
        (["redis://127.0.0.1:1/0", "stats", "--json"], 3),
    ]:
        code, out, err = run(args[:1], *args[1:])
        assert code == expected, args
        assert err == ""
        answer = json.loads(out)
        assert answer["exit_code"] == expected
        assert answer["error"]


@pytest.mark.parametrize(
    "command",
    [[], ["stats"], ["users"], ["keys"], ["show"], ["purge"], ["delete-user"], ["export"]],
)
def test_every_help_fits_one_screen_and_gives_an_example(
    command: list[str], file_db: DashDatabase
) -> None:
    """dash-database -h, and each subcommand's, is under 40 lines and shows an example."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        main([file_db._backend.location, *command, "-h"] if command else ["-h"])
    assert exit_.value.code == 0
    text = out.getvalue()
    assert len(text.splitlines()) < 40, text
    assert "example" in text
    if command == ["purge"]:
        assert "90s, 15m, 12h, 30d, 2w" in text
