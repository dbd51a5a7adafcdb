"""The Redis layout: every script's keys declared, one slot per user, plain reads of fresh users,
and the upgrade of stores written by 2.3."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dash_database import DashDatabase
from dash_database.backends.redis import layout, migration, scripts
from dash_database.exceptions import StorageError

from helpers import KEY, Clock, assert_counters_exact, load_redis_store, open_face

redis = pytest.importorskip("redis")

# What the 2.3 fixture holds under each prefix (see tests/data/README.md).
FIXTURE_VALUES: dict[Any, dict[Any, Any]] = {
    1: {"count": 41, "big": b"x" * 5000},
    "alice": {"cart": [1, 2], "big": "y" * 3000},
    "a}b{c": {"odd": {"k": "v"}},
    "é": {7: 3.5},
    "big-replaced": {"v": b"b" * 3000},
}
FIXTURE_PREFIXES: dict[str, dict[str, Any]] = {"plain:": {}, "signed:": {"secret_key": KEY}}
_QUOTED = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b"}


def _fixture(url: str) -> dict[str, str]:
    """Load the 2.3 fixture under fresh prefixes; its old prefixes mapped to them."""
    prefixes = {old: f"test-{uuid.uuid4().hex}-{old}" for old in FIXTURE_PREFIXES}
    load_redis_store(url, "redis-store-2.3.0", prefixes)
    return prefixes


def _contents(db: DashDatabase) -> dict[Any, dict[Any, Any]]:
    return {
        user: {key: db.get_user_value(user, key) for key in db.list_stored_user_keys(user)}
        for user in db.list_users()
    }


def test_bucket_tags_spread_over_the_slots_as_redis_hashes_them() -> None:
    """Each bucket's tag hashes (as Redis Cluster does) into its own share of the slots."""
    tags = layout.bucket_tags(16)
    for index, tag in enumerate(tags):
        key = f"app:{{{tag}}}:users".encode()
        assert layout.slot(key) == redis.crc.key_slot(key)
        assert layout.slot(key) * 16 // layout.SLOTS == index
    for key in (b"plain", b"a{}b", b"{x}y{z}", b"}{", b"{a}"):
        assert layout.slot(key) == redis.crc.key_slot(key)


def test_every_key_of_one_user_is_in_one_slot(redis_url: str) -> None:
    """A user's values, chunks and index entries share one hash slot, whatever its id."""
    with DashDatabase(redis_url, prefix=f"test-{uuid.uuid4().hex}:") as db:
        store = db._backend.open()  # type: ignore[attr-defined]
        for user in (1, "alice", "a}b{c", "{}", "é"):
            member = json.dumps(user)
            names = [*store.user_keys(member), store.chunk(member, "0" * 32, 3)]
            assert len({layout.slot(name.encode()) for name in names}) == 1, user


def _monitor(url: str) -> Callable[[], list[bytes]]:
    """Start recording the server's MONITOR lines; return what stops it and gives them."""
    client = redis.Redis.from_url(url, protocol=2)
    connection = client.connection_pool.get_connection()
    connection.send_command("MONITOR")
    assert connection.read_response() in (b"OK", "OK")
    lines: list[bytes] = []
    marker = f"monitor-end-{uuid.uuid4().hex}".encode()

    def read() -> None:
        while marker not in (line := connection.read_response()):
            lines.append(line)

    reader = threading.Thread(target=read)
    reader.start()

    def stop() -> list[bytes]:
        client.get(marker)
        reader.join()
        connection.disconnect()
        return lines

    return stop


def _arguments(line: bytes) -> list[bytes]:
    """The arguments of one MONITOR line, unescaped."""

    def unescape(text: bytes) -> bytes:
        out, i = bytearray(), 0
        while i < len(text):
            if text[i : i + 1] == b"\\":
                code = text[i + 1 : i + 2]
                if code == b"x":
                    out.append(int(text[i + 2 : i + 4], 16))
                    i += 4
                    continue
                out += _ESCAPES.get(code, code)
                i += 2
                continue
            out.append(text[i])
            i += 1
        return bytes(out)

    return [unescape(quoted) for quoted in _QUOTED.findall(line.split(b"] ", 1)[1])]


def _undeclared(url: str, lines: list[bytes]) -> tuple[set[bytes], list[str]]:
    """The scripts run (by SHA), and each key a script touched without declaring it."""
    client = redis.Redis.from_url(url)
    ran: set[bytes] = set()
    found: list[str] = []
    declared: set[bytes] = set()
    for line in lines:
        arguments = _arguments(line)
        if b"[0 lua]" not in line:
            declared = set()
            if arguments[0].upper() == b"EVALSHA":
                ran.add(arguments[1])
                declared = set(arguments[3 : 3 + int(arguments[2])])
            continue
        touched = [
            k if isinstance(k, bytes) else k.encode() for k in client.command_getkeys(*arguments)
        ]
        found += [f"{arguments[0]!r} {key!r}" for key in touched if key not in declared]
    return ran, found


@pytest.fixture
def monitored(redis_url: str) -> Iterator[Callable[[], tuple[set[bytes], list[str]]]]:
    """Records the server's commands until the test asks what its scripts touched."""
    stop = _monitor(redis_url)
    stopped: list[bytes] = []

    def result() -> tuple[set[bytes], list[str]]:
        stopped.extend(stop())
        return _undeclared(redis_url, stopped)

    yield result
    if not stopped:
        stop()


def test_every_script_declares_every_key_it_touches(
    redis_url: str,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    monitored: Callable[[], tuple[set[bytes], list[str]]],
) -> None:
    """Each script, on every path (chunks, expiry, quotas, rename, upgrade), touches only the
    keys in its KEYS, as MONITOR shows them."""
    prefixes = _fixture(redis_url)
    with DashDatabase(redis_url, prefix=prefixes["signed:"], secret_key=KEY) as old:
        assert old.get_user_value(1, "big") == b"x" * 5000  # upgraded on open
    options: dict[str, Any] = {"expire_after": 3600, "secret_key": KEY}
    quotas: dict[str, Any] = {
        "max_total_bytes": 10**9,
        "max_keys_per_user": 50,
        "max_bytes_per_user": 10**8,
    }
    prefix = f"test-{uuid.uuid4().hex}:"
    with (
        DashDatabase(redis_url, prefix=prefix, **options, **quotas) as db,
        DashDatabase(redis_url, prefix=prefix, secret_key=KEY) as racer,
    ):
        db._backend.chunk_size = 1024
        db.store_user_value("u", "big", b"a" * 5000)
        db.store_user_value("u", "big", b"b" * 5000)  # replaces a chunked value
        db.store_user_value("u", "small", 1)
        db.update_user_value("u", "small", lambda n: n + 1)
        server: Any = db._backend._server  # type: ignore[attr-defined]
        run = server.run

        def racing(script: Any, keys: list[str], args: list[Any]) -> Any:
            if script.text == scripts.RENAME_USER and not racer.get_user_value("u", "late"):
                racer.store_user_value("u", "late", 1)  # lands between the heads and the move
            return run(script, keys, args)

        monkeypatch.setattr(server, "run", racing)
        assert db.rename_user("u", "v") == 3
        monkeypatch.setattr(server, "run", run)
        assert db.get_user_value("v", "late") == 1  # bound to its new id
        assert db.get_user_value("v", "big") == b"b" * 5000
        db.delete_user_value("v", "big", if_not_exists="raise")
        db.store_user_value("v", "big", b"c" * 5000)
        db.delete_all_user_values("v")
        assert db.list_stored_user_keys("v") == []
        db.store_user_value("idle", "big", b"d" * 5000)
        db.store_user_value("idle-too", "big", b"e" * 5000)
        db.store_user_value("purged", "big", b"f" * 5000)
        clock.now += 10 * 3600
        assert db.get_user_value("idle", "big") is None  # dropped on the read
        assert db.list_stored_user_keys("idle-too") == []  # dropped on the touch
        db.purge_expired()  # or the background purge of the calls above
        assert db.list_users() == []
        db.store_user_value("counted", "big", b"g" * 5000)
        member = json.dumps("counted")
        db._backend._server.client().hincrby(db._backend.open().user_keys(member)[1], member, 5)  # type: ignore[attr-defined]
        assert db.repair().recounted  # the recount scripts, a user's chunks declared
        assert db.inspect.check().healthy
    ran, undeclared = monitored()
    assert undeclared == []
    every = {
        name: hashlib.sha1(text.encode()).hexdigest().encode()
        for name, text in vars(scripts).items()
        if isinstance(text, str) and "redis.call" in text and not name.startswith("_")
    }
    assert {name for name, sha in every.items() if sha not in ran} == set()


def test_a_fresh_process_reads_a_user_written_elsewhere_with_plain_reads(redis_url: str) -> None:
    """Ten reads by a fresh process of a user another process wrote, with expiry on, make at
    most one script call: the activity the first one reported is remembered."""
    prefix = f"test-{uuid.uuid4().hex}:"
    with DashDatabase(redis_url, prefix=prefix, expire_after=3600) as writer:
        writer.store_user_value("alice", "cart", [1, 2])
    reader = (
        "import sys\nfrom dash_database import DashDatabase\n"
        "with DashDatabase(sys.argv[1], prefix=sys.argv[2], expire_after=3600) as db:\n"
        "    sys.stdin.readline()\n"
        "    assert all(db.get_user_value('alice', 'cart') == [1, 2] for _ in range(10))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", reader, redis_url, prefix], stdin=subprocess.PIPE, text=True
    )
    client = redis.Redis.from_url(redis_url)
    try:
        before = client.info("commandstats")
    finally:
        process.communicate("go\n", timeout=60)
    after = client.info("commandstats")
    assert process.returncode == 0

    def calls(command: str) -> int:
        name = f"cmdstat_{command}"
        return int(after.get(name, {}).get("calls", 0)) - int(before.get(name, {}).get("calls", 0))

    assert calls("evalsha") <= 1
    assert calls("hget") >= 9


_OPEN = """
import asyncio, json, sys
from dash_database import AsyncDashDatabase, DashDatabase
sys.stdin.readline()
options = json.loads(sys.argv[3])
if sys.argv[4] == "async":  # the async face opens the store, and upgrades it
    asyncio.run(AsyncDashDatabase(sys.argv[1], prefix=sys.argv[2], **options).list_users())
with DashDatabase(sys.argv[1], prefix=sys.argv[2], **options) as db:
    users = sorted(db.list_users(), key=repr) + ["gone"]
    print(repr([(user, db.inspect.last_activity(user)) for user in users]))
    # Read as an operator does, leaving the activity alone.
    values = {u: {k: db.inspect.value(u, k) for k in db.inspect.key_sizes(u)} for u in users[:-1]}
    print(repr(sorted((repr(u), sorted(v.items(), key=repr)) for u, v in values.items())))
"""


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_2_3_store_reads_the_same_after_two_processes_open_it_at_once(
    redis_url: str, face: str
) -> None:
    """Two processes opening a 2.3 store together upgrade it once; every value, activity and
    counter reads the same, and nothing of the flat layout is left but expiring chunks."""
    prefixes = _fixture(redis_url)
    client = redis.Redis.from_url(redis_url)
    for old, prefix in prefixes.items():
        seen = {m: s for m, s in client.zrange(f"{prefix}seen", 0, -1, withscores=True)}
        options = {"secret_key": KEY.decode()} if FIXTURE_PREFIXES[old] else {}
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", _OPEN, redis_url, prefix, json.dumps(options), face],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for process in processes:
            process.stdin.write("go\n")  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
        outputs = [process.communicate(timeout=60)[0] for process in processes]
        expected = sorted(
            (repr(u), sorted(values.items(), key=repr)) for u, values in FIXTURE_VALUES.items()
        )
        activity = sorted(((json.loads(m), s) for m, s in seen.items()), key=lambda p: repr(p[0]))
        activity.sort(key=lambda pair: pair[0] == "gone")
        assert outputs == [f"{activity!r}\n{expected!r}\n"] * 2
        with DashDatabase(redis_url, prefix=prefix, **FIXTURE_PREFIXES[old]) as db:
            assert _contents(db) == FIXTURE_VALUES
            assert_counters_exact(db)
        left = client.keys(f"{prefix}*")
        flat = [key for key in left if b"{" not in key and not key.endswith(b"layout")]
        assert all(b":chunk:" in key and client.ttl(key) > 0 for key in flat), flat


def test_an_upgrade_that_died_midway_is_finished_by_the_next_process(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A process that dies after moving some users leaves a store the next one finishes,
    logging its progress; counters are exact even for a store of 2.1 that had none."""
    prefix = _fixture(redis_url)["plain:"]
    redis.Redis.from_url(redis_url).delete(f"{prefix}bytes", f"{prefix}totals")  # as 2.1 left it
    move = migration._Upgrade._move
    moved: list[str] = []

    def dies_after_two(self: Any, member: str) -> None:
        if len(moved) == 2:
            raise KeyboardInterrupt
        moved.append(member)
        move(self, member)

    monkeypatch.setattr(migration._Upgrade, "_move", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        DashDatabase(redis_url, prefix=prefix)
    monkeypatch.setattr(migration._Upgrade, "_move", move)
    monkeypatch.setattr(migration, "PROGRESS_EVERY", 2)
    with caplog.at_level(logging.INFO, "dash_database"):
        db = DashDatabase(redis_url, prefix=prefix, max_total_bytes=10**9)
    assert "upgrading 4 users" in caplog.text  # six, two of them moved already
    assert "upgraded 2 of 4 users" in caplog.text
    with db:
        assert _contents(db) == FIXTURE_VALUES
        assert_counters_exact(db)


def test_the_async_face_upgrades_a_2_3_store_in_its_own_process(redis_url: str) -> None:
    """A 2.3 store opened by the async face in this process (so its upgrade runs on the loop)
    reads the same, with its counters exact."""
    for old, prefix in _fixture(redis_url).items():
        with open_face("async", redis_url, prefix=prefix, **FIXTURE_PREFIXES[old]) as db:
            assert _contents(db) == FIXTURE_VALUES
        with DashDatabase(redis_url, prefix=prefix, **FIXTURE_PREFIXES[old]) as db:
            assert_counters_exact(db)


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_store_of_a_newer_or_damaged_layout_is_refused(redis_url: str, face: str) -> None:
    """A layout this version cannot read, or a damaged layout key, fails naming what to do
    (the async face, on its first call)."""
    client = redis.Redis.from_url(redis_url)
    for found, message in ((b"4:16", "upgrade dash_database"), (b"3:99999", "damaged")):
        prefix = f"test-{uuid.uuid4().hex}:"
        client.set(f"{prefix}layout", found)
        with pytest.raises(StorageError, match=message):
            open_face(face, redis_url, prefix=prefix).list_users()
