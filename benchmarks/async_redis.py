"""How the async face should reach Redis: a whole call on a worker thread, or redis.asyncio?

Run from the project root (not collected by pytest)::

    python benchmarks/async_redis.py [--tasks 50] [--ops 4000]

Starts a redis-server on 127.0.0.1, then, in one run, times the same small
writes and reads made by ``--tasks`` concurrent asyncio tasks four ways:

* ``AsyncDashDatabase``: each call runs the sync face on a worker thread;
* redis-py's sync client on a worker thread (``asyncio.to_thread``), bare;
* ``redis.asyncio``, bare: the network I/O on the event loop;
* redis-py's sync client, bare, one call after another (the floor of one client).

Each figure is the median of 3 turns, with its min-max; before each way it
waits for a quiet machine and prints the other processes' CPU share.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import redis
import redis.asyncio as aredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dash_database import AsyncDashDatabase

VALUE = b"x" * 100
TURNS = 3


def busy_share(seconds: float = 1.0) -> float:
    """The share of all CPUs busy over ``seconds`` (this process is idle meanwhile)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(total1 - total0, 1)


def wait_for_quiet(limit: float = 0.15, tries: int = 20) -> float:
    """Wait until other processes use under ``limit`` of the CPUs; return their share."""
    share = busy_share()
    for _ in range(tries):
        if share < limit:
            break
        share = busy_share()
    return share


async def run_tasks(tasks: int, ops: int, call: Callable[[int], Awaitable[object]]) -> float:
    """Operations per second of ``tasks`` tasks making ``ops`` calls in all."""
    per_task = ops // tasks

    async def worker(index: int) -> None:
        for n in range(per_task):
            await call(index * per_task + n)

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return per_task * tasks / (time.perf_counter() - start)


async def one_turn(name: str, url: str, prefix: str, tasks: int, ops: int) -> tuple[float, float]:
    """Writes/s and reads/s of one way in one turn, under a fresh key prefix."""
    write: Callable[[int], Awaitable[object]]
    read: Callable[[int], Awaitable[object]]
    if name == "AsyncDashDatabase (to_thread)":
        db = AsyncDashDatabase(url, prefix=prefix)
        write = lambda i: db.store_user_value(i % 1000, i, VALUE)  # noqa: E731
        read = lambda i: db.get_user_value(i % 1000, i)  # noqa: E731
    elif name == "redis-py on to_thread":
        sync = redis.Redis.from_url(url)
        write = lambda i: asyncio.to_thread(sync.hset, f"{prefix}{i % 1000}", i, VALUE)  # noqa: E731
        read = lambda i: asyncio.to_thread(sync.hget, f"{prefix}{i % 1000}", i)  # noqa: E731
    else:
        client = aredis.Redis.from_url(url, max_connections=tasks)
        write = lambda i: client.hset(f"{prefix}{i % 1000}", i, VALUE)  # noqa: E731
        read = lambda i: client.hget(f"{prefix}{i % 1000}", i)  # noqa: E731
    return await run_tasks(tasks, ops, write), await run_tasks(tasks, ops, read)


def measure(name: str, url: str, tasks: int, ops: int) -> dict[str, list[float]]:
    """Writes/s and reads/s of one way, three turns each."""
    results: dict[str, list[float]] = {"write": [], "read": []}
    for _ in range(TURNS):
        prefix = f"bench-{uuid.uuid4().hex}:"
        writes, reads = asyncio.run(one_turn(name, url, prefix, tasks, ops))
        results["write"].append(writes)
        results["read"].append(reads)
    return results


def sync_floor(url: str, ops: int) -> dict[str, list[float]]:
    """Writes/s and reads/s of one sync client, call after call."""
    client = redis.Redis.from_url(url)
    results: dict[str, list[float]] = {"write": [], "read": []}
    for _ in range(TURNS):
        prefix = f"bench-{uuid.uuid4().hex}:"
        for kind in ("write", "read"):
            start = time.perf_counter()
            for i in range(ops):
                key = f"{prefix}{i % 1000}"
                client.hset(key, i, VALUE) if kind == "write" else client.hget(key, i)
            results[kind].append(ops / (time.perf_counter() - start))
    return results


def figure(values: list[float]) -> str:
    """``median (min-max)``, rounded."""
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    """Start redis-server, measure every way, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--ops", type=int, default=4000)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("needs redis-server (apt-get install redis-server)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tempfile.mkdtemp()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        print(
            f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, redis-py {redis.__version__}"
        )
        print(f"{args.tasks} tasks, {args.ops} operations a turn, median of {TURNS} turns\n")
        print("| way | writes/s | reads/s | other processes' CPU before |")
        print("|---|---|---|---|")
        ways = ["AsyncDashDatabase (to_thread)", "redis-py on to_thread", "redis.asyncio"]
        for name in ways:
            share = wait_for_quiet()
            res = measure(name, url, args.tasks, args.ops)
            print(f"| {name} | {figure(res['write'])} | {figure(res['read'])} | {share:.0%} |")
        share = wait_for_quiet()
        res = sync_floor(url, args.ops)
        row = f"{figure(res['write'])} | {figure(res['read'])} | {share:.0%}"
        print(f"| redis-py, one sync client | {row} |")
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
