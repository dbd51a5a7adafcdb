"""Side-by-side benchmark of dash_database's backends, raw redis-py and diskcache.

Run from the project root (not collected by pytest)::

    python benchmarks/run.py            # full run, writes docs/benchmarks.md
    python benchmarks/run.py --quick    # a smaller store, for a quick look

Every engine runs the same workloads in the same process, one after the
other, so the ratios mean something on a shared, noisy machine even when the
absolute numbers do not. A redis-server is started on 127.0.0.1 when one is
installed and no ``--redis-url`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dash_database import DashDatabase

VALUE = b"x" * 100
REPEATS = 5


class Engine(Protocol):
    """What each contender offers to the workloads."""

    def store(self, user: int, key: int, value: bytes) -> None: ...
    def get(self, user: int, key: int) -> Any: ...
    def list(self, user: int) -> list[Any]: ...
    def delete_user(self, user: int) -> None: ...
    def close(self) -> None: ...


class Ours:
    """dash_database on any location."""

    def __init__(self, location: Any, **options: Any) -> None:
        self.db = DashDatabase(location, **options)

    def store(self, user: int, key: int, value: bytes) -> None:
        self.db.store_user_value(user, key, value)

    def get(self, user: int, key: int) -> Any:
        return self.db.get_user_value(user, key)

    def list(self, user: int) -> list[Any]:
        return self.db.list_stored_user_keys(user)

    def delete_user(self, user: int) -> None:
        self.db.delete_all_user_values(user)

    def close(self) -> None:
        self.db.close()


class RawRedis:
    """redis-py alone: one hash per user, the cheapest equivalent layout."""

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.client.flushdb()

    def store(self, user: int, key: int, value: bytes) -> None:
        self.client.hset(f"raw:{user}", str(key), value)

    def get(self, user: int, key: int) -> Any:
        return self.client.hget(f"raw:{user}", str(key))

    def list(self, user: int) -> list[Any]:
        return list(self.client.hkeys(f"raw:{user}"))

    def delete_user(self, user: int) -> None:
        self.client.delete(f"raw:{user}")

    def close(self) -> None:
        self.client.close()


class DiskCache:
    """diskcache.Cache with tuple keys; listing a user must scan every key."""

    def __init__(self, folder: str) -> None:
        import diskcache

        self.cache = diskcache.Cache(folder)

    def store(self, user: int, key: int, value: bytes) -> None:
        self.cache[(user, key)] = value

    def get(self, user: int, key: int) -> Any:
        return self.cache.get((user, key))

    def list(self, user: int) -> list[Any]:
        return [k for u, k in self.cache.iterkeys() if u == user]

    def delete_user(self, user: int) -> None:
        for key in self.list(user):
            del self.cache[(user, key)]

    def close(self) -> None:
        self.cache.close()


def timed(function: Callable[[], Any], count: int) -> float:
    """Median seconds per call of ``function`` over :data:`REPEATS` batches of ``count``."""
    samples = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(count):
            function()
        samples.append((time.perf_counter() - started) / count)
    return statistics.median(samples)


def measure(engine: Engine, users: int, ops: int) -> dict[str, float]:
    """Seconds per operation of each workload on ``engine``."""
    counter = iter(range(10**9))
    results = {
        "store": timed(lambda: engine.store(0, next(counter) % 1000, VALUE), ops),
        "get": timed(lambda: engine.get(0, next(counter) % 1000), ops),
    }
    for user in range(1, users + 1):
        for key in range(5):
            engine.store(user, key, VALUE)
    target = iter(range(1, users + 1))
    results["list"] = timed(lambda: engine.list(users // 2), 20)
    results["delete"] = timed(lambda: engine.delete_user(next(target)), 20)
    return results


def free_port() -> int:
    """A free local TCP port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def redis_server(url: str | None) -> Iterator[str | None]:
    """The given URL, or a throwaway local redis-server, or ``None``."""
    if url or not shutil.which("redis-server"):
        yield url
        return
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    process = subprocess.Popen([*command, "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait()


def contenders(folder: str, url: str | None) -> Iterator[tuple[str, Callable[[], Engine]]]:
    """Each engine's name and a function that opens it empty."""
    yield "dash_database, SQLite file", lambda: Ours(os.path.join(folder, "ours.sqlite3"))
    yield (
        "dash_database, SQLite file, durability=full",
        lambda: Ours(os.path.join(folder, "full.sqlite3"), durability="full"),
    )
    yield "dash_database, :memory:", lambda: Ours(":memory:")
    try:
        import diskcache  # noqa: F401

        yield "diskcache", lambda: DiskCache(os.path.join(folder, "diskcache"))
    except ImportError:
        pass
    if url:
        yield "dash_database, Redis", lambda: Ours(url, prefix="bench:")
        yield "redis-py alone", lambda: RawRedis(url)


def table(results: dict[str, dict[str, float]], users: int) -> str:
    """The markdown table of rates and ratios."""
    base = results.get("diskcache")
    lines = [
        f"| engine | store ops/s | get ops/s | list one user's 5 keys of {users:,} users (ms) "
        "| delete one user (ms) |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        cells = [f"{1 / r['store']:,.0f}", f"{1 / r['get']:,.0f}"]
        cells += [f"{r['list'] * 1000:.3f}", f"{r['delete'] * 1000:.3f}"]
        if base and name != "diskcache":
            cells[0] += f" ({base['store'] / r['store']:.2f}x)"
            cells[1] += f" ({base['get'] / r['get']:.2f}x)"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    raw, ours = results.get("redis-py alone"), results.get("dash_database, Redis")
    if raw and ours:
        overhead = ", ".join(f"{op} {ours[op] / raw[op]:.2f}x" for op in ("store", "get", "list"))
        lines.append("")
        lines.append(f"dash_database on Redis, time per operation vs redis-py alone: {overhead}.")
    lines.append("")
    lines.append(
        "Ratios in parentheses: rate relative to diskcache in the same run (above 1 is faster)."
    )
    return "\n".join(lines)


def main() -> None:
    """Run every workload on every engine and print (and save) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller store and fewer operations")
    parser.add_argument("--redis-url", help="use this server instead of starting one")
    parser.add_argument("--output", default="docs/benchmarks.md", help="markdown file to write")
    args = parser.parse_args()
    users, ops = (2_000, 500) if args.quick else (10_000, 2_000)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder, redis_server(args.redis_url) as url:
        for name, open_engine in contenders(folder, url):
            print(f"measuring {name} ...", file=sys.stderr)
            engine = open_engine()
            try:
                results[name] = measure(engine, users, ops)
            finally:
                engine.close()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
    report = f"Machine: {machine}. Command: `{command}`.\n\n{table(results, users)}\n"
    print(report)
    Path(args.output).write_text("# Benchmarks\n\n" + report)


if __name__ == "__main__":
    main()
