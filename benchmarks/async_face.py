"""The async face: its throughput against bare redis.asyncio, its event loop's stalls, and the
file engine through it against the sync face.

Run from the project root (not collected by pytest)::

    python benchmarks/async_face.py [--tasks 50] [--ops 10000]

Starts a redis-server on 127.0.0.1, then prints three Markdown tables, each way
measured side by side in the same turns (median of 3 turns, with min-max), after
waiting for a quiet machine (the other processes' CPU share is in the last column):

* Redis: ``--tasks`` asyncio tasks make ``--ops`` small (100-byte) writes, reads,
  and a mix (4 reads to 1 write), through ``AsyncDashDatabase`` and through bare
  ``redis.asyncio`` doing the same ``HSET``/``HGET``, as its users use it (its
  defaults) and without any timeout (the limit row), each after one
  call per task (connections made, the store opened: a running app's steady state);
* the loop's longest stall (a task ticking every millisecond notes its longest
  wait) while 200 tasks each write and read a small value, both ways, and while one
  task stores and reads back a 200 MB value;
* a SQLite file: the async face with ``--tasks`` tasks, the sync face call after
  call, and bare ``sqlite3`` call after call (the limit row).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench.method import wait_for_quiet
from bench.runner import redis_server

from dash_database import AsyncDashDatabase, DashDatabase

VALUE = b"x" * 100
TURNS = 3
USERS = 1000
#: Calls that write, out of every 5 of the mix.
MIX_WRITES = 1

Call = Callable[[int], Awaitable[object]]
DEFAULTS = "redis.asyncio, bare HSET/HGET, its defaults"
NO_TIMEOUT = "redis.asyncio, bare, no timeout (the limit)"


async def run_tasks(tasks: int, ops: int, call: Call) -> float:
    """Calls per second of ``tasks`` tasks making ``ops`` calls in all."""
    per_task = ops // tasks

    async def worker(index: int) -> None:
        for n in range(per_task):
            await call(index * per_task + n)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return per_task * tasks / (time.perf_counter() - start)


def mixed(write: Call, read: Call) -> Call:
    """Calls that write one time in 5 and read the others, in a fixed shuffled order."""
    order = [n % 5 < MIX_WRITES for n in range(1000)]
    random.Random(0).shuffle(order)
    return lambda i: write(i) if order[i % 1000] else read(i)


def redis_calls(way: str, url: str, tasks: int) -> tuple[Call, Call, Callable[[], Awaitable[None]]]:
    """The write and read of one way on Redis, and what closes it, under a fresh prefix."""
    prefix = f"bench-{uuid.uuid4().hex}:"
    if way == "AsyncDashDatabase":
        db = AsyncDashDatabase(url, prefix=prefix)
        return (
            lambda i: db.store_user_value(i % USERS, i, VALUE),
            lambda i: db.get_user_value(i % USERS, i),
            db.close,
        )
    # The peer as its users use it: redis-py's defaults, which since 8.0 give each command a
    # 5 s socket timeout (asyncio.wait_for, a task per command); and without any timeout, the
    # limit (a call to a stalled server would wait forever).
    options = {"socket_timeout": None} if way == NO_TIMEOUT else {}
    client = aredis.Redis.from_url(url, max_connections=tasks, **options)
    return (
        lambda i: client.hset(f"{prefix}{i % USERS}", str(i), VALUE),
        lambda i: client.hget(f"{prefix}{i % USERS}", str(i)),
        client.aclose,
    )


async def redis_turn(way: str, url: str, tasks: int, ops: int) -> list[float]:
    """Writes/s, reads/s and mixed calls/s of one way in one turn."""
    write, read, close = redis_calls(way, url, tasks)
    try:
        # The steady state of a running app: connections made, the store opened.
        await run_tasks(tasks, tasks, lambda i: write(-1 - i))
        figures = [await run_tasks(tasks, ops, write), await run_tasks(tasks, ops, read)]
        figures.append(await run_tasks(tasks, ops, mixed(write, read)))
    finally:
        await close()
    return figures


async def longest_stall(work: Callable[[], Awaitable[object]]) -> float:
    """The longest time, in ms, a task ticking every millisecond waited while ``work`` ran."""
    longest = 0.0
    done = False

    async def tick() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    try:
        await work()
    finally:
        done = True
        await ticker
    return longest * 1000


async def stall_turn(way: str, url: str) -> float:
    """The longest stall while 200 tasks each write and read one small value."""
    write, read, close = redis_calls(way, url, 200)

    async def both(i: int) -> None:
        await write(i)
        await read(i)

    try:
        await both(-1)  # connected, and the store opened, before the clock starts
        return await longest_stall(lambda: asyncio.gather(*(both(i) for i in range(200))))
    finally:
        await close()


async def big_turn(url: str, big: bytes) -> float:
    """The longest stall while one task stores and reads back ``big`` through the face."""
    db = AsyncDashDatabase(url, prefix=f"bench-{uuid.uuid4().hex}:")

    async def store_and_read() -> None:
        await db.store_user_value("u", "big", big)
        assert len(await db.get_user_value("u", "big")) == len(big)
        await db.delete_all_user_values("u")

    try:
        await db.touch("u")  # connected before the clock starts
        return await longest_stall(store_and_read)
    finally:
        await db.close()


def file_turn(way: str, folder: str, tasks: int, ops: int) -> list[float]:
    """Writes/s and reads/s of one way on a fresh SQLite file."""
    path = os.path.join(folder, f"{uuid.uuid4().hex}.sqlite3")
    if way == "AsyncDashDatabase":

        async def turn() -> list[float]:
            async with AsyncDashDatabase(path) as db:
                write = lambda i: db.store_user_value(i % USERS, i, VALUE)  # noqa: E731
                read = lambda i: db.get_user_value(i % USERS, i)  # noqa: E731
                return [await run_tasks(tasks, ops, write), await run_tasks(tasks, ops, read)]

        return asyncio.run(turn())
    if way == "DashDatabase, call after call":
        with DashDatabase(path) as sync:
            return [
                timed(ops, lambda i: sync.store_user_value(i % USERS, i, VALUE)),
                timed(ops, lambda i: sync.get_user_value(i % USERS, i)),
            ]
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE v (user TEXT, key TEXT, value BLOB, PRIMARY KEY (user, key))")
    upsert = "INSERT OR REPLACE INTO v VALUES (?, ?, ?)"
    select = "SELECT value FROM v WHERE user = ? AND key = ?"
    try:
        return [
            timed(ops, lambda i: conn.execute(upsert, (str(i % USERS), str(i), VALUE))),
            timed(ops, lambda i: conn.execute(select, (str(i % USERS), str(i))).fetchone()),
        ]
    finally:
        conn.close()


def timed(ops: int, call: Callable[[int], Any]) -> float:
    """Calls per second of ``call`` made ``ops`` times, one after another."""
    start = time.perf_counter()
    for i in range(ops):
        call(i)
    return ops / (time.perf_counter() - start)


def figure(values: list[float], digits: int = 0) -> str:
    """``median (min-max)``, rounded."""
    fmt = f"{{:,.{digits}f}}"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{fmt.format(mid)} ({fmt.format(low)}-{fmt.format(high)})"


def side_by_side(ways: list[str], turn: Callable[[str], list[float]]) -> dict[str, Any]:
    """Each way's figures over :data:`TURNS` turns, the ways alternating within each turn;
    and the other processes' CPU share before each way's first turn."""
    results: dict[str, list[list[float]]] = {way: [] for way in ways}
    quiet: dict[str, float] = {}
    for _ in range(TURNS):
        for way in ways:
            share = wait_for_quiet()
            quiet.setdefault(way, share)
            results[way].append(turn(way))
    return {"figures": results, "quiet": quiet}


def columns(runs: list[list[float]]) -> list[list[float]]:
    """Each figure across the turns."""
    return [list(values) for values in zip(*runs, strict=True)]


def main() -> None:
    """Start redis-server, measure every way, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--ops", type=int, default=10000)
    args = parser.parse_args()
    with redis_server(None) as url, tempfile.TemporaryDirectory() as folder:
        if url is None:
            sys.exit("needs redis-server (apt-get install redis-server)")
        python = sys.version.split()[0]
        print(f"{os.cpu_count()} CPUs, Python {python}, redis-py {redis.__version__}")
        print(f"\n### Redis: {args.tasks} tasks, {args.ops} calls a figure, 100-byte values\n")
        print(
            "| way | writes/s | reads/s | mixed calls/s | x defaults | x no timeout | other CPU |"
        )
        print("|---|---|---|---|---|---|---|")
        ways = ["AsyncDashDatabase", DEFAULTS, NO_TIMEOUT]
        redis_runs = side_by_side(
            ways, lambda way: asyncio.run(redis_turn(way, url, args.tasks, args.ops))
        )
        medians = {
            way: [statistics.median(c) for c in columns(redis_runs["figures"][way])] for way in ways
        }
        for way in ways:
            cols = columns(redis_runs["figures"][way])
            ratios = [
                "/".join(f"{m / b:.2f}" for m, b in zip(medians[way], medians[base], strict=True))
                for base in (DEFAULTS, NO_TIMEOUT)
            ]
            cells = " | ".join([*(figure(c) for c in cols), *ratios])
            print(f"| {way} | {cells} | {redis_runs['quiet'][way]:.0%} |")

        print("\n### The event loop's longest stall, in ms\n")
        print("| work | AsyncDashDatabase | redis.asyncio, its defaults | other CPU before |")
        print("|---|---|---|---|")
        stalls = side_by_side(ways[:2], lambda way: [asyncio.run(stall_turn(way, url))])
        cells = " | ".join(figure(columns(stalls["figures"][way])[0], 1) for way in ways[:2])
        quiet = stalls["quiet"][ways[0]]
        print(f"| 200 tasks, each a write and a read | {cells} | {quiet:.0%} |")
        big = os.urandom(200 * 1024 * 1024)
        bigs = side_by_side(ways[:1], lambda way: [asyncio.run(big_turn(url, big))])
        cell = figure(columns(bigs["figures"][ways[0]])[0], 1)
        quiet = bigs["quiet"][ways[0]]
        print(f"| one task, a 200 MB value stored and read | {cell} | - | {quiet:.0%} |")

        print(f"\n### A SQLite file: {args.ops} calls a figure, 100-byte values\n")
        print("| way | writes/s | reads/s | other CPU before |")
        print("|---|---|---|---|")
        file_ways = ["AsyncDashDatabase", "DashDatabase, call after call", "sqlite3, bare"]
        files = side_by_side(file_ways, lambda way: file_turn(way, folder, args.tasks, args.ops))
        for way in file_ways:
            cells = " | ".join(figure(c) for c in columns(files["figures"][way]))
            label = f"{way} ({args.tasks} tasks)" if way == "AsyncDashDatabase" else way
            print(f"| {label} | {cells} | {files['quiet'][way]:.0%} |")


if __name__ == "__main__":
    main()
