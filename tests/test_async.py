"""The async face: the same store as the sync one, and an event loop that never waits for it."""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dash_database import AsyncDashDatabase, AsyncUserValues, DashDatabase
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


@pytest.mark.parametrize("location", [":memory:", "file"])
def test_a_200_mb_value_leaves_other_tasks_running(location: str, tmp_path: Path) -> None:
    """Storing and reading 200 MB, the loop never pauses for 1/3 of the time they block it."""
    where = tmp_path / "big.sqlite3" if location == "file" else location
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
