"""Redis specifics: URLs, namespacing, connection errors and a server crash."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dash_database import AsyncDashDatabase, DashDatabase
from dash_database.backends.redis.engine import redact
from dash_database.exceptions import (
    ConnectionFailedError,
    DashDatabaseError,
    DependencyMissingError,
    DeserializationError,
    OutcomeUnknownError,
    StorageError,
)

from helpers import (
    RedisServer,
    ReplyDroppingProxy,
    free_port,
    open_face,
    require_redis_server,
)

redis = pytest.importorskip("redis")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:secret@host/1", "rediss://user:***@host/1"),
        ("redis://host:6379/0", "redis://host:6379/0"),
    ],
)
def test_passwords_never_show(url: str, shown: str) -> None:
    """``redact`` hides the password of every URL form."""
    assert redact(url) == shown


def test_unreachable_server_fails_fast_naming_the_url() -> None:
    """Construction against a closed port raises ConnectionFailedError without the password."""
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with pytest.raises(ConnectionFailedError, match=r"127\.0\.0\.1") as info:
        DashDatabase(url, timeout=1)
    assert time.monotonic() - started < 30
    assert "hunter2" not in str(info.value)
    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value, DashDatabaseError)


def test_wrong_password_is_a_clear_error(tmp_path: Path) -> None:
    """A server that wants a password refuses a wrong one with a clear error."""
    require_redis_server()
    server = RedisServer(tmp_path, ["--appendonly", "no", "--requirepass", "right"]).start()
    try:
        wrong = server.url.replace("redis://", "redis://:wrong@")
        with pytest.raises(ConnectionFailedError, match="password") as info:
            DashDatabase(wrong, timeout=2)
        assert ":wrong@" not in str(info.value)
        right = server.url.replace("redis://", "redis://:right@")
        with DashDatabase(right) as db:
            db.store_user_value(1, "k", 1)
            assert db.get_user_value(1, "k") == 1
            assert "right" not in repr(db)
    finally:
        server.stop()


def test_prefixes_keep_apps_apart_and_close_flushes_nothing(redis_url: str) -> None:
    """Two prefixes on one server never see each other; close() deletes nothing."""
    client = redis.Redis.from_url(redis_url)
    client.set("other-app:key", b"theirs")
    before = set(client.keys("*"))
    first = DashDatabase(redis_url, prefix="app1:")
    second = DashDatabase(redis_url, prefix="app2:")
    first.store_user_value(1, "k", "first")
    second.store_user_value(2, "k", "second")
    assert first.list_users() == [1]
    assert second.list_users() == [2]
    assert second.get_user_value(1, "k") is None
    first.close()
    second.close()
    written = set(client.keys("*")) - before
    assert all(key.startswith((b"app1:", b"app2:")) for key in written)
    assert client.keys("app1:*")
    assert client.keys("app2:*")
    with DashDatabase(redis_url, prefix="app1:") as again:
        assert again.get_user_value(1, "k") == "first"
    assert client.get("other-app:key") == b"theirs"
    first_default = DashDatabase(redis_url)
    first_default.store_user_value(1, "k", 1)
    values = first_default._backend._hash(1)  # type: ignore[attr-defined]
    assert values.startswith("dash_database:{")
    assert client.exists(values) == 1
    first_default.delete_all_user_values(1)
    first_default.close()


def test_a_ready_client_is_used_and_left_open(redis_url: str) -> None:
    """A ``redis.Redis`` client works as location, and close() leaves it usable."""
    client = redis.Redis.from_url(redis_url)
    with DashDatabase(client, prefix="client:") as db:
        db.store_user_value("u", "k", [1])
        assert repr(db).startswith("DashDatabase('redis://127.0.0.1:")
    assert client.ping()
    with pytest.raises(ValueError, match="decode_responses=False"):
        DashDatabase(redis.Redis.from_url(redis_url, decode_responses=True))


def test_the_async_face_takes_a_ready_client_of_either_kind(redis_url: str) -> None:
    """AsyncDashDatabase takes a ``redis.asyncio.Redis`` (used as it is, left open) or, as 2.3
    apps pass, a ``redis.Redis`` (a client of its own per loop, from its settings); a client
    that decodes replies, or another object, is refused."""
    import redis.asyncio

    async def main() -> None:
        given = redis.asyncio.Redis.from_url(redis_url)
        async with AsyncDashDatabase(given, prefix="async-client:") as db:
            await db.store_user_value("u", "k", [1])
            assert await db.get_user_value("u", "k") == [1]
        assert await given.ping()  # left open: the app's to close
        await given.aclose()

    asyncio.run(main())
    sync_client = redis.Redis.from_url(redis_url)
    db = AsyncDashDatabase(sync_client, prefix="async-client:")
    assert asyncio.run(db.get_user_value("u", "k")) == [1]
    asyncio.run(db.close())
    assert sync_client.ping()
    with pytest.raises(ValueError, match="decode_responses=False"):
        AsyncDashDatabase(redis.asyncio.Redis.from_url(redis_url, decode_responses=True))
    with pytest.raises(TypeError, match="not int"):
        AsyncDashDatabase(42)


def test_options_that_do_not_apply_are_refused(redis_url: str, tmp_path: Path) -> None:
    """``durability`` is SQLite's, ``prefix`` is Redis's; the wrong one raises ValueError."""
    with pytest.raises(ValueError, match="appendfsync always"):
        DashDatabase(redis_url, durability="full")
    with pytest.raises(ValueError, match="prefix applies to Redis only"):
        DashDatabase(tmp_path / "x.sqlite3", prefix="p:")
    with pytest.raises(TypeError, match=r"redis\.Redis client"):
        DashDatabase(42)


def test_missing_redis_package_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the redis package, the error gives the exact pip command."""
    monkeypatch.setitem(sys.modules, "redis", None)
    for name in list(sys.modules):  # as in a process that never imported them
        if name.startswith(("redis.", "dash_database.backends.redis.")):
            monkeypatch.delitem(sys.modules, name)
    with pytest.raises(DependencyMissingError, match=r'pip install "\.\[redis\]"') as info:
        DashDatabase("redis://127.0.0.1:1/0")
    assert isinstance(info.value, ImportError)


def test_a_module_missing_from_the_install_is_not_blamed_on_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If our own Redis module is missing (a broken install), that error is the one raised."""
    for name in list(sys.modules):
        if name.startswith("dash_database.backends.redis"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dash_database.backends.redis.engine", None)
    with pytest.raises(ImportError) as info:
        DashDatabase("redis://127.0.0.1:1/0")
    assert not isinstance(info.value, DependencyMissingError)
    assert info.value.name == "dash_database.backends.redis.engine"


def test_big_values_are_chunked_and_swapped_atomically(redis_url: str) -> None:
    """Readers racing a writer of multi-chunk values always see one whole value."""
    with DashDatabase(redis_url, prefix="chunks:") as db:
        db._backend.chunk_size = 1024
        values = [bytes([n]) * 20_000 for n in range(8)]
        db.store_user_value(1, "v", values[0])
        stop = threading.Event()
        seen: list[bytes] = []

        def read() -> None:
            while not stop.is_set():
                seen.append(db.get_user_value(1, "v"))

        reader = threading.Thread(target=read)
        reader.start()
        for value in values * 5:
            db.store_user_value(1, "v", value)
        stop.set()
        reader.join()
        assert seen
        assert all(value in values for value in seen)
        client = redis.Redis.from_url(redis_url)
        chunk_keys = client.keys("chunks:*chunk:*")
        permanent = [key for key in chunk_keys if client.ttl(key) == -1]
        assert len(permanent) == 20  # the last value's; replaced ones are expiring
        db.delete_all_user_values(1)
        left = client.keys("chunks:*chunk:*")
        assert all(client.ttl(key) > 0 for key in left)  # only replaced chunks, expiring


def test_a_chunk_replaced_midway_through_its_pieces_reads_the_new_value(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk gone between two of its pieces restarts the read, which finds the new value."""
    monkeypatch.setattr("dash_database.backends.redis.chunks.READ_PIECE", 100)
    with (
        DashDatabase(redis_url, prefix="pieces:") as db,
        DashDatabase(redis_url, prefix="pieces:") as writer,
    ):
        db._backend.chunk_size = writer._backend.chunk_size = 1024
        db.store_user_value(1, "v", b"a" * 5000)
        client = db._backend._server.client()  # type: ignore[attr-defined]
        getrange = client.getrange
        replaced: list[bool] = []

        def replace_first(key: str, start: int, end: int) -> Any:
            if not replaced:
                replaced.append(True)
                writer.store_user_value(1, "v", b"b" * 5000)
                redis.Redis.from_url(redis_url).delete(key)  # as if its grace had run out
            return getrange(key, start, end)

        monkeypatch.setattr(client, "getrange", replace_first)
        assert db.get_user_value(1, "v") == b"b" * 5000
        assert replaced


def test_a_value_whose_chunks_keep_vanishing_fails_clearly(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value whose chunk is gone while its record stays raises DeserializationError (its
    data is lost); one replaced under every read attempt, StorageError; never a torn value."""
    monkeypatch.setattr("dash_database.backends.redis.chunks.READ_PIECE", 100)
    with DashDatabase(redis_url, prefix="vanishing:") as db:
        db._backend.chunk_size = 1024
        db.store_user_value(1, "v", b"a" * 5000)
        server = db._backend._server  # type: ignore[attr-defined]
        monkeypatch.setattr(server.client(), "getrange", lambda key, start, end: b"")
        with pytest.raises(DeserializationError, match="a chunk of its data is gone"):
            db.get_user_value(1, "v")
        read = server.read

        def replaced_each_time(*command: Any) -> Any:
            record = read(*command)
            return b"p" + uuid.uuid4().hex.encode() + b":5" if command[0] == "HGET" else record

        monkeypatch.setattr(server, "read", replaced_each_time)
        with pytest.raises(StorageError, match="kept changing while it was read"):
            db.get_user_value(1, "v")


@pytest.mark.parametrize("face", ["sync", "async"])
def test_scripts_flushed_from_the_server_are_loaded_again(redis_url: str, face: str) -> None:
    """After SCRIPT FLUSH (or a server restart) every write script still runs."""
    with open_face(face, redis_url, prefix=f"flushed-{face}:") as db:
        db.store_user_value(1, "k", "before")
        redis.Redis.from_url(redis_url).script_flush()
        db.store_user_value(1, "k", "after")
        db.store_user_value(1, "k2", "v")
        db.delete_user_value(1, "k2", if_not_exists="raise")
        assert db.get_user_value(1, "k") == "after"
        db.delete_all_user_values(1)
        assert db.list_users() == []


@pytest.mark.parametrize("face", ["sync", "async"])
def test_damaged_record_gives_a_clear_error(redis_url: str, face: str) -> None:
    """A record that cannot be unpickled raises DeserializationError."""
    with open_face(face, redis_url, prefix=f"damaged-{face}:") as db:
        db.store_user_value(1, "v", 1)
        values = db._backend._hash(1)  # type: ignore[attr-defined]
        redis.Redis.from_url(redis_url).hset(values, '"v"', b"P\x80\x05garbage")
        with pytest.raises(DeserializationError, match="cannot be read back"):
            db.get_user_value(1, "v")


def test_server_crash_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """SIGKILL mid-run: the pending call raises, a restart serves every acknowledged write."""
    require_redis_server()
    options = ["--appendonly", "yes", "--appendfsync", "always"]
    server = RedisServer(tmp_path, options).start()
    db = DashDatabase(server.url, timeout=2)
    acknowledged: list[int] = []
    failures: list[BaseException] = []

    def write() -> None:
        for index in range(100_000):
            try:
                db.store_user_value("u", index, index)
            except ConnectionFailedError as exc:
                failures.append(exc)
                return
            acknowledged.append(index)

    writer = threading.Thread(target=write)
    writer.start()
    while len(acknowledged) < 200:
        time.sleep(0.01)  # waits for real writes to a real server
    server.kill()
    writer.join(timeout=60)
    assert failures, "the call pending during the crash must raise"
    # Sent before the crash: it may have been applied, and says so; or it never left.
    assert re.search(r"may have been applied|cannot reach the Redis server", str(failures[0]))
    with pytest.raises(ConnectionFailedError):
        db.get_user_value("u", 0)
    server.start()
    keys = db.list_stored_user_keys("u")  # the next call after the restart works
    assert set(acknowledged) <= set(keys)
    assert all(db.get_user_value("u", i) == i for i in acknowledged[-50:])
    db.close()
    server.stop()


def test_a_read_or_write_is_one_round_trip_with_its_activity(redis_url: str) -> None:
    """In the steady state, a read or write of a user this process never saw is one command."""
    prefix = f"test-{uuid.uuid4().hex}:"
    with DashDatabase(redis_url, prefix=prefix, expire_after=3600) as db:
        server = db._backend._server  # type: ignore[attr-defined]
        sent: list[str] = []

        def counting(original: Any) -> Any:
            def counted(*args: Any, **options: Any) -> Any:
                sent.append(str(args[0]))
                return original(*args, **options)

            return counted

        # Plain reads and writes (scripts) each go through one method of the server.
        server.read = counting(server.read)
        server.write = counting(server.write)
        db.store_user_value("warm-up", "k", 0)  # loads the scripts; the background purge runs
        assert db.get_user_value("not written", "k") is None  # loads the read's script
        sent.clear()
        for user in range(20):
            db.store_user_value(user, "k", user)
        assert len(sent) == 20
        for user in range(20):
            assert db.get_user_value(user, "k") == user
        assert db.get_user_value("never seen", "k") is None
        assert len(sent) == 41
        assert set(sent) == {"EVALSHA", "HGET"}  # a user written lately: a plain read
        assert db.inspect.last_activity(0) is not None  # the activity was recorded
        assert db.inspect.last_activity("never seen") is None  # a read creates nothing


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_lost_reply_says_the_write_may_have_been_applied(redis_url: str, face: str) -> None:
    """The server ran the update, its reply was lost: the error says so, never "changed nothing"."""
    server_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    proxy = ReplyDroppingProxy(server_port)
    prefix = f"test-{uuid.uuid4().hex}:"
    try:
        with open_face(face, proxy.url, prefix=prefix) as db:
            db.store_user_value("u", "n", 0)  # builds the counters and loads the scripts
            proxy.arm()
            with pytest.raises(OutcomeUnknownError) as info:
                db.update_user_value("u", "n", lambda old: old + 1)
            assert isinstance(info.value, ConnectionFailedError)
            assert "may have been applied" in str(info.value)
            assert "changed nothing" not in str(info.value)
            assert db.get_user_value("u", "n") == 1  # it was: read back before retrying
    finally:
        proxy.close()


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_server_that_cannot_be_reached_changed_nothing(tmp_path: Path, face: str) -> None:
    """A write that never left (the server is down) says that it changed nothing."""
    require_redis_server()
    server = RedisServer(tmp_path).start()
    db = open_face(face, server.url, timeout=2)
    server.stop()
    with pytest.raises(ConnectionFailedError, match="This call changed nothing") as info:
        db.store_user_value("u", "k", 1)
    assert not isinstance(info.value, OutcomeUnknownError)
    db.close()


def test_a_stalled_server_fails_each_call_after_the_timeout(tmp_path: Path) -> None:
    """A server that stops answering (SIGSTOP): a write already sent fails with
    OutcomeUnknownError and a read with ConnectionFailedError once the timeout passes; once it
    goes on, the value is the old or the new one and the store works."""
    require_redis_server()
    server = RedisServer(tmp_path).start()
    try:
        with DashDatabase(server.url, timeout=0.5) as db:
            db.store_user_value("u", "k", "old")
            with paused(server):
                with pytest.raises(OutcomeUnknownError, match="may have been applied"):
                    db.store_user_value("u", "k", "new")  # on a connection made before
                with pytest.raises(ConnectionFailedError) as read:
                    db.get_user_value("u", "k")
                assert not isinstance(read.value, OutcomeUnknownError)
            assert db.get_user_value("u", "k") in ("old", "new")
            db.store_user_value("u", "k", "after")
            assert db.get_user_value("u", "k") == "after"
    finally:
        server.stop()


def test_a_stalled_server_fails_each_async_call_after_the_timeout(tmp_path: Path) -> None:
    """The same through the async face on one event loop, whose connections have no socket
    timeout (a deadline per call bounds them); and a new connection's handshake, on a loop
    of its own, gives up too."""
    require_redis_server()
    server = RedisServer(tmp_path).start()

    async def main(db: AsyncDashDatabase) -> None:
        await db.store_user_value("u", "k", "old")
        with paused(server):
            with pytest.raises(OutcomeUnknownError, match=r"no answer within timeout=0\.5s"):
                await db.store_user_value("u", "k", "new")
            with pytest.raises(ConnectionFailedError) as read:
                await db.get_user_value("u", "k")
            assert not isinstance(read.value, OutcomeUnknownError)
        assert await db.get_user_value("u", "k") in ("old", "new")
        await db.store_user_value("u", "k", "after")
        assert await db.get_user_value("u", "k") == "after"

    try:
        db = AsyncDashDatabase(server.url, timeout=0.5)
        asyncio.run(main(db))
        with paused(server), pytest.raises(ConnectionFailedError, match="handshake"):
            asyncio.run(db.get_user_value("u", "k"))  # a new loop: a new connection
        assert asyncio.run(db.get_user_value("u", "k")) == "after"
        asyncio.run(db.close())
    finally:
        server.stop()


@contextmanager
def paused(server: RedisServer) -> Iterator[None]:
    """The server stopped where it is (SIGSTOP) inside the block, each call bounded in time."""
    server.pause(True)
    started = time.monotonic()
    try:
        yield
    finally:
        server.pause(False)
    assert time.monotonic() - started < 10  # each call gave up; none hung
