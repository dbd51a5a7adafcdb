"""The async face: the same store as the sync one, and an event loop that never waits for it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import re
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from dash_database import (
    AsyncDashDatabase,
    AsyncInspector,
    AsyncUserValues,
    DashDatabase,
    async_concurrency,
)
from dash_database.exceptions import ConnectionFailedError, DatabaseClosedError

from helpers import RedisServer, require_redis_server


def test_every_public_method_has_an_async_twin_with_the_same_parameters() -> None:
    """Each public DashDatabase method is an AsyncDashDatabase coroutine with the same signature."""
    for name, method in inspect.getmembers(DashDatabase, inspect.isfunction):
        if name.startswith("_") or name == "user":
            continue
        twin = getattr(AsyncDashDatabase, name)
        assert inspect.iscoroutinefunction(twin), name
        assert inspect.signature(twin).parameters.keys() == (
            inspect.signature(method).parameters.keys()
        ), name
    init = inspect.signature(AsyncDashDatabase.__init__).parameters
    assert init.keys() == inspect.signature(DashDatabase.__init__).parameters.keys()


def test_the_two_faces_read_each_others_values(tmp_path: Path) -> None:
    """A value written by the async face is read by the sync face, and the other way round."""
    path = tmp_path / "shared.sqlite3"

    async def main() -> None:
        async with AsyncDashDatabase(path) as adb:
            await adb.store_user_value("u", "from-async", [1, 2])
            with DashDatabase(path) as db:
                assert db.get_user_value("u", "from-async") == [1, 2]
                db.store_user_value("u", "from-sync", {"a": 1})
            assert await adb.get_user_value("u", "from-sync") == {"a": 1}
            assert await adb.list_stored_user_keys("u") == ["from-async", "from-sync"]

    asyncio.run(main())


def test_the_async_view_of_one_user(tmp_path: Path) -> None:
    """db.user(id) gives get, set, delete (whether it existed), keys, clear and update_value."""

    async def main() -> None:
        async with AsyncDashDatabase(tmp_path / "v.sqlite3") as db:
            view = db.user("alice")
            assert isinstance(view, AsyncUserValues)
            await view.set("theme", "dark")
            assert await view.get("theme") == "dark"
            assert await view.get("missing", "n/a") == "n/a"
            assert await view.update_value("visits", lambda n: n + 1, default=0) == 1
            assert await view.keys() == ["theme", "visits"]
            assert await view.contains("theme")
            assert await view.count() == 2
            assert await view.delete("theme") is True
            assert await view.delete("theme") is False
            await view.clear()
            assert await view.keys() == []
        assert db.closed
        with pytest.raises(DatabaseClosedError, match="open a new AsyncDashDatabase"):
            await db.get_user_value("alice", "theme")

    asyncio.run(main())


@pytest.mark.parametrize("location", ["memory", "file", "redis"])
def test_200_concurrent_tasks_increment_one_counter_to_200(
    location: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """200 tasks each adding 1 with update_user_value leave exactly 200."""
    if location == "redis":
        where: Any = request.getfixturevalue("redis_url")
        options = {"prefix": f"test-{uuid.uuid4().hex}:"}
    else:
        where, options = (":memory:" if location == "memory" else tmp_path / "c.sqlite3"), {}

    async def main() -> int:
        async with AsyncDashDatabase(where, **options) as db:  # type: ignore[arg-type]
            increments = [db.update_user_value("u", "n", lambda n: n + 1, 0) for _ in range(200)]
            await asyncio.gather(*increments)
            return int(await db.get_user_value("u", "n"))

    assert asyncio.run(main()) == 200


async def largest_gap_while(work: Callable[[], Awaitable[object]]) -> float:
    """The longest time a 1 ms ticking task waited while ``work`` ran, in seconds."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    await work()
    done.set()
    await ticker
    return max(gaps)


@pytest.mark.parametrize("location", [":memory:", "file", "redis"])
def test_a_200_mb_value_leaves_other_tasks_running(
    location: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Storing and reading 200 MB, the loop never pauses for 1/3 of the time they block it."""
    where: Any = {"file": tmp_path / "big.sqlite3", ":memory:": ":memory:"}.get(location)
    if location == "redis":
        where = request.getfixturevalue("redis_url")
    big = bytes(200 * 1024 * 1024)

    async def main() -> tuple[float, float]:
        async with AsyncDashDatabase(where) as db:

            async def store_and_read() -> None:
                await db.store_user_value("u", "big", big)
                assert len(await db.get_user_value("u", "big")) == len(big)

            start = time.perf_counter()
            db.sync.store_user_value("u", "big", big)  # the same work, blocking the loop
            assert len(db.sync.get_user_value("u", "big")) == len(big)
            blocking = time.perf_counter() - start
            return blocking, await largest_gap_while(store_and_read)

    blocking, gap = asyncio.run(main())
    assert gap < blocking / 3, (gap, blocking)


def test_an_unreachable_redis_fails_on_the_first_call_then_recovers(tmp_path: Path) -> None:
    """Nothing connects in the constructor; a call fails while the server is down, works once up."""
    require_redis_server()
    server = RedisServer(tmp_path)
    db = AsyncDashDatabase(server.url, timeout=2)  # no server yet: no error here

    async def store() -> None:
        await db.store_user_value("u", "k", "v")

    with pytest.raises(ConnectionFailedError, match="cannot reach the Redis server"):
        asyncio.run(store())
    server.start()
    try:
        asyncio.run(store())
        assert asyncio.run(db.get_user_value("u", "k")) == "v"
        asyncio.run(db.close())
    finally:
        server.stop()


def test_several_event_loops_in_turn(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """One database used from a new event loop per call, as Flask's async views do."""
    require_redis_server()
    url = request.getfixturevalue("redis_url")
    for location, options in [(url, {"prefix": f"test-{uuid.uuid4().hex}:"}), (tmp_path / "l", {})]:
        db = AsyncDashDatabase(location, **options)  # type: ignore[arg-type]
        for turn in range(5):
            asyncio.run(db.store_user_value("u", turn, turn * 10))
        assert asyncio.run(db.list_stored_user_keys("u")) == [0, 1, 2, 3, 4]
        assert asyncio.run(db.get_user_value("u", 4)) == 40
        asyncio.run(db.close())


class _RefusingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A loop's default executor that fails any work given to it."""

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the loop's default executor was used")


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a thread was used")


#: Every public method of the async face and its views, as the test below calls them.
_CALLED = {
    "AsyncDashDatabase": {
        "store_user_value", "get_user_value", "has_user_value", "count_user_values",
        "list_stored_user_keys", "delete_user_value", "delete_all_user_values",
        "update_user_value", "rename_user", "copy_to", "sign_values", "convert_to_data",
        "repair", "list_users", "touch", "purge_expired", "stats", "user_stats", "user",
        "close",
    },
    "AsyncInspector": {
        "users", "stats", "check", "user_stats", "key_sizes", "head", "value",
        "last_activity", "idle_users",
    },
    "AsyncUserValues": {
        "get", "set", "delete", "contains", "count", "keys", "clear", "update_value",
    },
}  # fmt: skip


def test_the_no_thread_test_calls_every_public_method() -> None:
    """The test below names every public method of the async face, its inspector and views."""
    for cls in (AsyncDashDatabase, AsyncInspector, AsyncUserValues):
        public = {name for name in vars(cls) if not name.startswith("_") and name != "sync"}
        public -= {"closed"}  # a property
        assert public == _CALLED[cls.__name__], cls.__name__


def _server_store(server: str, request: pytest.FixtureRequest) -> tuple[str, dict[str, str]]:
    """A fresh store's location and options on the test server ``server``."""
    if server == "postgres":
        return request.getfixturevalue("postgres_url"), {"schema": f"test_{uuid.uuid4().hex}"}
    return request.getfixturevalue("redis_url"), {"prefix": f"test-{uuid.uuid4().hex}:"}


@pytest.mark.parametrize("server", ["redis", "postgres"])
def test_calls_under_the_chunk_size_use_no_thread_on_a_server(
    server: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 rounds of every public method on Redis and on PostgreSQL, with every way to a
    thread failing."""
    monkeypatch.setattr(asyncio, "to_thread", _refuse)
    monkeypatch.setattr(async_concurrency, "_pool", _refuse)
    with pytest.raises(AssertionError, match="a thread was used"):  # the trap is set
        asyncio.run(async_concurrency.run(len, b""))
    url, options = _server_store(server, request)
    copy_options = {name: value + "copy_" for name, value in options.items()}
    key = b"k" * 32

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(_RefusingExecutor())
        db = AsyncDashDatabase(url, expire_after=3600, secret_key=key, **options)  # type: ignore[arg-type]
        target = AsyncDashDatabase(url, secret_key=key, **copy_options)  # type: ignore[arg-type]
        for turn in range(1000):
            await db.store_user_value("u", "k", turn)
            assert await db.get_user_value("u", "k") == turn
            assert await db.has_user_value("u", "k")
            assert await db.count_user_values("u") == 1
            assert await db.list_stored_user_keys("u") == ["k"]
            assert await db.update_user_value("u", "n", lambda n: n + 1, 0) == 1
            await db.delete_user_value("u", "n")
            assert await db.rename_user("u", "v") == 1
            assert await db.rename_user("v", "u") == 1
            await db.touch("u")
            assert await db.list_users() == ["u"]
            assert (await db.stats()).keys == 1
            assert (await db.user_stats("u")).keys == 1
            assert (await db.copy_to(target)).users == 1
            assert (await db.sign_values()).refused == 0
            assert (await db.convert_to_data(trust_pickles=True, dry_run=True)).refused == 0
            assert (await db.repair(dry_run=True)).dropped == []
            assert await db.purge_expired() == 0
            inspect_ = db.inspect
            assert [u.user_id for u in await inspect_.users()] == ["u"]
            assert (await inspect_.stats()).users == 1
            assert (await inspect_.check()).healthy
            assert (await inspect_.user_stats("u")).keys == 1
            assert list(await inspect_.key_sizes("u")) == ["k"]
            assert await inspect_.head("u", "k") is not None
            assert await inspect_.value("u", "k") == turn
            assert await inspect_.last_activity("u") is not None
            assert await inspect_.idle_users(3600) == []
            view = db.user("w")
            await view.set("a", 1)
            assert await view.get("a") == 1
            assert await view.contains("a")
            assert await view.count() == 1
            assert await view.keys() == ["a"]
            assert await view.update_value("a", lambda n: n + 1) == 2
            assert await view.delete("a")
            await view.clear()
            await db.delete_all_user_values("u")
        await target.close()
        await db.close()

    asyncio.run(main())


def _clients(server: str, url: str) -> Callable[[], int]:
    """What counts the server's client connections."""
    if server == "postgres":
        import psycopg

        admin = psycopg.connect(url, autocommit=True)
        statement = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        return lambda: int(admin.execute(statement).fetchone()[0])  # type: ignore[index]
    import redis

    client = redis.Redis.from_url(url)
    return lambda: len(client.client_list())


@pytest.mark.parametrize("server", ["redis", "postgres"])
def test_a_thousand_event_loops_leave_no_connection_open(
    server: str, request: pytest.FixtureRequest
) -> None:
    """1,000 calls, each in its own asyncio.run, leave the server's client count where it was."""
    url, options = _server_store(server, request)
    db = AsyncDashDatabase(url, **options)  # type: ignore[arg-type]
    clients = _clients(server, url)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unclosed transport or socket fails the test
        before = clients()
        for turn in range(1000):
            asyncio.run(db.store_user_value("u", "k", turn))
        assert asyncio.run(db.get_user_value("u", "k")) == 999
        # A closed connection leaves the server's list as soon as the server reads its end.
        deadline = time.monotonic() + 5
        while clients() != before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert clients() == before
        asyncio.run(db.close())


class Traced:
    """A value that notes the thread each time it is pickled and unpickled."""

    threads: ClassVar[list[str]] = []

    def __init__(self, size: int) -> None:
        self.data = b"x" * size

    def __reduce__(self) -> tuple[Any, ...]:
        Traced.threads.append(f"dump:{threading.current_thread().name}")
        return (_rebuild, (self.data,))


def _rebuild(data: bytes) -> Traced:
    Traced.threads.append(f"load:{threading.current_thread().name}")
    return Traced(len(data))


def test_a_value_larger_than_a_chunk_is_serialized_and_read_off_the_loop(redis_url: str) -> None:
    """On Redis, a value under a chunk is pickled on the loop; a larger one on a thread of the
    store's own after one try on the loop, and read back there too."""
    Traced.threads.clear()

    async def main() -> None:
        async with AsyncDashDatabase(redis_url, prefix=f"test-{uuid.uuid4().hex}:") as db:
            db._backend.chunk_size = 1024
            await db.store_user_value("u", "small", Traced(100))
            assert (await db.get_user_value("u", "small")).data == b"x" * 100
            await db.store_user_value("u", "big", Traced(5000))
            assert (await db.get_user_value("u", "big")).data == b"x" * 5000

    asyncio.run(main())
    loop, own = "MainThread", "dash_database"
    assert [re.sub(r"_[0-9]+$", "", t) for t in Traced.threads] == [
        f"dump:{loop}",
        f"load:{loop}",
        f"dump:{loop}",
        f"dump:{own}",
        f"load:{own}",
    ]
