"""Side-by-side benchmark of dash_database's backends, raw redis-py and diskcache.

Run from the project root (not collected by pytest)::

    python benchmarks/run.py            # full run, writes docs/benchmarks.md
    python benchmarks/run.py --quick    # a smaller store, for a quick look

Every engine runs the same workloads in the same run, one after the other,
so the ratios mean something on a shared, noisy machine even when the absolute
numbers do not. A redis-server is started on 127.0.0.1 when one is installed
and no ``--redis-url`` is given. dash-database 1.0 has the same import name,
so it runs in its own virtual environment (made once, under ``~/.cache``), in
a subprocess running this file with ``--worker``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pickle
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
VALUE = b"x" * 100
REPEATS = 5
THREADS = 8
PROCESSES = 4
OLD_VENV = Path.home() / ".cache" / "dash_database-bench" / "venv-1.0"


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
        # Imported here: in a --worker subprocess, dash_database is the 1.0 package.
        from dash_database import DashDatabase

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


class OneZero:
    """dash-database 1.0 (in its own virtual environment): joined keys, no default argument."""

    def __init__(self, location: str) -> None:
        from dash_database import DashDatabase

        self.db = DashDatabase(location)

    def store(self, user: int, key: int, value: bytes) -> None:
        self.db.store_user_value(user, key, value)

    def get(self, user: int, key: int) -> Any:
        return self.db.get_user_value(user, key)

    def list(self, user: int) -> list[Any]:
        return list(self.db.list_stored_user_keys(user))

    def delete_user(self, user: int) -> None:
        self.db.delete_all_user_values(user)

    def close(self) -> None:
        self.db.db.close()


class RawRedis:
    """redis-py alone: one hash per user, the cheapest equivalent layout."""

    def __init__(self, url: str, tag: str = "raw") -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.tag = tag

    def store(self, user: int, key: int, value: bytes) -> None:
        self.client.hset(f"{self.tag}:{user}", str(key), value)

    def get(self, user: int, key: int) -> Any:
        return self.client.hget(f"{self.tag}:{user}", str(key))

    def list(self, user: int) -> list[Any]:
        return list(self.client.hkeys(f"{self.tag}:{user}"))

    def delete_user(self, user: int) -> None:
        self.client.delete(f"{self.tag}:{user}")

    def close(self) -> None:
        self.client.close()


class ScriptedRedis(RawRedis):
    """redis-py with each write as the smallest Lua script: the floor of any atomic script."""

    def __init__(self, url: str, tag: str = "scripted") -> None:
        super().__init__(url, tag)
        self.script = self.client.register_script(
            "return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])"
        )

    def store(self, user: int, key: int, value: bytes) -> None:
        self.script(keys=[f"{self.tag}:{user}"], args=[str(key), value])


class PlainSqlite:
    """The sqlite3 module alone, no library: one locked writer, one reader per thread.

    The floor for the 8-thread workload: what any store on one SQLite file
    costs in CPython before it does anything of its own.
    """

    def __init__(self, path: str) -> None:
        import sqlite3

        self.path = path
        self.writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.writer.execute("PRAGMA journal_mode = WAL")
        self.writer.execute("PRAGMA synchronous = NORMAL")
        self.writer.execute("CREATE TABLE IF NOT EXISTS t (key TEXT PRIMARY KEY, value BLOB)")
        self.lock = threading.Lock()
        self.local = threading.local()

    def store(self, user: int, key: int, value: bytes) -> None:
        with self.lock:
            self.writer.execute("REPLACE INTO t VALUES (?, ?)", (f"{user}:{key}", value))

    def get(self, user: int, key: int) -> Any:
        import sqlite3

        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = sqlite3.connect(self.path, isolation_level=None)
        return conn.execute("SELECT value FROM t WHERE key = ?", (f"{user}:{key}",)).fetchall()

    def list(self, user: int) -> list[Any]:
        raise NotImplementedError  # only the 8-thread workload uses this engine

    def delete_user(self, user: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.writer.close()


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
    return statistics.median(timed_once(function, count) for _ in range(REPEATS))


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
    # Engines that scan the whole store take seconds per call: time them 5
    # times (1 per batch), not 100.
    count = 20 if timed_once(lambda: engine.list(users // 2), 1) < 0.01 else 1
    results["list"] = timed(lambda: engine.list(users // 2), count)
    results["delete"] = timed(lambda: engine.delete_user(next(target)), count)
    return results


def at_scale(kind: str, location: str, users: int) -> dict[str, float]:
    """List and delete one user in a store of ``users`` users x 5 keys."""
    engine = open_engine(kind, location)
    for user in range(1, users + 1):
        for key in range(5):
            engine.store(user, key, VALUE)
    target = iter(range(1, users + 1))
    results = {
        "list": timed(lambda: engine.list(users // 2), 20),
        "delete": timed(lambda: engine.delete_user(next(target)), 20),
    }
    engine.close()
    return results


#: The calls that :func:`alternate` times, on user 0's keys and users 1-100.
CALLS: dict[str, Callable[[Engine, int], Any]] = {
    "store": lambda engine, n: engine.store(0, n % 1000, VALUE),
    "get": lambda engine, n: engine.get(0, n % 1000),
    "list": lambda engine, n: engine.list(1 + n % 100),
}


def alternate(engines: dict[str, Engine], ops: int) -> dict[str, dict[str, float]]:
    """Median seconds of single calls of :data:`CALLS`, alternating engines call by call.

    Timing engines one after the other lets the machine's noise into their
    ratio; alternating every call keeps them in the same conditions, and the
    median of single calls ignores bursts.
    """
    for engine in engines.values():
        for user in range(1, 101):
            for key in range(5):
                engine.store(user, key, VALUE)
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in engines}
    order = list(engines.items())
    for op, call in CALLS.items():
        for n in range(ops * REPEATS):
            # Whoever goes first after the loop's own work pays for waking a
            # server or a cold cache: take turns.
            order.append(order.pop(0))
            for name, engine in order:
                started = time.perf_counter()
                call(engine, n)
                samples[name].setdefault(op, []).append(time.perf_counter() - started)
    for engine in engines.values():
        engine.close()
    return {
        name: {op: statistics.median(values) for op, values in times.items()}
        for name, times in samples.items()
    }


def overhead(location: str, ops: int) -> dict[str, dict[str, float]]:
    """Our Redis backend, redis-py alone, and redis-py writing through a one-line script."""
    url, _, tag = location.partition("#")
    engines: dict[str, Engine] = {
        "ours": open_engine("ours-redis", location),
        "raw": RawRedis(url, f"{tag}raw"),
        "script": ScriptedRedis(url, f"{tag}script"),
    }
    return alternate(engines, ops)


def expiry_cost(location: str, ops: int) -> dict[str, dict[str, float]]:
    """dash_database on a SQLite file with and without ``expire_after``."""
    engines = {
        "off": open_engine("ours", f"{location}-off"),
        "on": open_engine("ours-expiry", f"{location}-on"),
    }
    return alternate(engines, ops)


def timed_once(function: Callable[[], Any], count: int) -> float:
    """Seconds per call of ``function`` over one batch of ``count`` calls."""
    started = time.perf_counter()
    for _ in range(count):
        function()
    return (time.perf_counter() - started) / count


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


def open_engine(kind: str, location: str) -> Engine:
    """Open one engine by kind; ``location`` is a path, or ``url#tag`` for Redis."""
    url, _, tag = location.partition("#")
    if kind == "ours":
        return Ours(location)
    if kind == "ours-full":
        return Ours(location, durability="full")
    if kind == "ours-expiry":
        return Ours(location, expire_after=86400)
    if kind == "ours-redis":
        return Ours(url, prefix=f"{tag}:")
    if kind == "ours-redis-expiry":
        return Ours(url, prefix=f"{tag}:", expire_after=86400)
    if kind == "redis":
        return RawRedis(url, tag)
    if kind == "diskcache":
        return DiskCache(location)
    if kind == "sqlite3":
        return PlainSqlite(location)
    if kind == "1.0":
        return OneZero(location)
    raise ValueError(kind)


def threads(kind: str, location: str, ops: int) -> dict[str, float]:
    """8 threads on one engine, 80% reads / 20% writes: ops/s and p99 latency."""
    engine = open_engine(kind, location)
    for user in range(THREADS):
        for key in range(100):
            engine.store(user, key, VALUE)
    latencies: list[float] = []

    def work(user: int) -> None:
        rng, mine = random.Random(user), []
        for _ in range(ops):
            key = rng.randrange(100)
            started = time.perf_counter()
            if rng.random() < 0.8:
                engine.get(user, key)
            else:
                engine.store(user, key, VALUE)
            mine.append(time.perf_counter() - started)
        latencies.extend(mine)

    workers = [threading.Thread(target=work, args=(user,)) for user in range(THREADS)]
    elapsed = run_together(workers)
    engine.close()
    latencies.sort()
    return {"ops": len(latencies) / elapsed, "p99": latencies[int(len(latencies) * 0.99)]}


def run_together(workers: list[Any]) -> float:
    """Start every thread or process, wait for all; return the seconds it took."""
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def _writer(kind: str, location: str, process: int, writes: int) -> None:
    engine = open_engine(kind, location)
    for key in range(writes):
        engine.store(1000 + process, key, VALUE)
    engine.close()


def processes(kind: str, location: str, writes: int) -> dict[str, float]:
    """4 processes writing to one store: writes/s, and how many writes went missing."""
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_writer, args=(kind, location, n, writes)) for n in range(PROCESSES)
    ]
    elapsed = run_together(workers)
    failed = sum(worker.exitcode != 0 for worker in workers)
    engine = open_engine(kind, location)
    found = sum(len(engine.list(1000 + n)) for n in range(PROCESSES))
    engine.close()
    return {"writes": PROCESSES * writes / elapsed, "lost": PROCESSES * writes - found + failed}


def frame_round_trip(kind: str, location: str, megabytes: int) -> dict[str, float]:
    """Store and get a DataFrame of ``megabytes``; run in a fresh process for its peak memory."""
    import numpy as np
    import pandas as pd

    rows = megabytes * 1024 * 1024 // 16
    frame = pd.DataFrame({"x": np.arange(rows), "y": np.random.default_rng(0).normal(size=rows)})
    # tracemalloc sees Python's and numpy's allocations (not SQLite's page
    # cache, a few MB); building the frame had its own peak, so start after it.
    # Opening a store is not part of a round trip (the reference opens nothing).
    engine = None if kind == "reference" else open_engine(kind, location)
    tracemalloc.start()
    started = time.perf_counter()
    if engine is None:
        with open(location, "wb") as file:
            pickle.dump(frame, file, protocol=5)
    else:
        engine.store(1, 1, frame)
    stored = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if engine is None:
        with open(location, "rb") as file:
            back = pickle.load(file)
    else:
        back = engine.get(1, 1)
        engine.close()
    done = time.perf_counter()
    assert back.equals(frame)
    return {
        "seconds": done - started,
        "store": stored - started,
        "get": done - stored,
        "extra_memory": peak / frame.memory_usage().sum(),
    }


def huge_value(kind: str, location: str, gigabytes: float) -> dict[str, Any]:
    """Store and read back a bytes value of ``gigabytes``; report the outcome."""
    value = bytes(int(gigabytes * 1024**3))
    engine = open_engine(kind, location)
    started = time.perf_counter()
    try:
        engine.store(1, 1, value)
    except Exception as exc:  # any refusal is an outcome to report
        return {"outcome": f"refused: {type(exc).__name__}: {str(exc)[:80]}"}
    back = engine.get(1, 1)
    elapsed = time.perf_counter() - started
    ok = back is not None and len(back) == len(value) and back == value
    engine.close()
    return {"outcome": "round-trips" if ok else "LOST", "seconds": elapsed}


def in_subprocess(python: str, *args: str) -> Any:
    """Run this file with ``--worker`` under ``python``; return its JSON answer."""
    command = [python, str(Path(__file__).resolve()), "--worker", *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def old_python() -> str | None:
    """The python of a virtual environment holding dash-database 1.0 (made once)."""
    python = OLD_VENV / "bin" / "python"
    if not python.exists():
        print("installing dash-database 1.0 in its own venv ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(OLD_VENV)], check=True)
        install = [str(python), "-m", "pip", "install", "-q", "dash_database==1.0"]
        if subprocess.run(install, check=False).returncode:
            return None
    return str(python)


def worker(args: list[str]) -> Any:
    """Run one workload named on the command line (in a subprocess); return its result."""
    workload, kind, location, *numbers = args
    if workload == "single":
        engine = open_engine(kind, location)
        try:
            return measure(engine, int(numbers[0]), int(numbers[1]))
        finally:
            engine.close()
    if workload == "scale":
        return at_scale(kind, location, int(numbers[0]))
    if workload == "overhead":
        return overhead(location, int(numbers[0]))
    if workload == "expiry":
        return expiry_cost(location, int(numbers[0]))
    if workload == "threads":
        return threads(kind, location, int(numbers[0]))
    if workload == "processes":
        return processes(kind, location, int(numbers[0]))
    if workload == "frame":
        return frame_round_trip(kind, location, int(numbers[0]))
    if workload == "huge":
        return huge_value(kind, location, float(numbers[0]))
    raise ValueError(workload)


class Run:
    """One benchmark run: every workload on every engine, results by workload and engine.

    :param folder: where files go.
    :param url: a Redis server, or ``None``.
    :param quick: smaller sizes.
    """

    def __init__(self, folder: str, url: str | None, quick: bool) -> None:
        self.folder, self.url, self.quick = folder, url, quick
        self.old = old_python()
        self.results: dict[str, dict[str, Any]] = {}
        self.scale_users = (100_000,)
        self.count = 0

    def location(self, kind: str) -> str:
        """A fresh location for one engine and workload."""
        self.count += 1
        if kind.startswith(("ours-redis", "redis")):
            return f"{self.url}#bench{self.count}-{os.getpid()}"
        if kind == "diskcache":
            return os.path.join(self.folder, f"diskcache{self.count}")
        return os.path.join(self.folder, f"store{self.count}.sqlite3")

    def engines(self, workload: str) -> list[tuple[str, str]]:
        """(label, kind) of every engine that runs this workload."""
        if workload == "overhead":
            return [("dash_database, Redis vs redis-py alone", "ours-redis")] if self.url else []
        if workload == "expiry":
            return [("dash_database, SQLite file, expire_after=1 day vs none", "ours")]
        rows = [("dash_database, SQLite file", "ours")]
        if workload == "scale":
            return rows
        if workload == "single":
            rows += [
                ("dash_database, SQLite file, durability=full", "ours-full"),
                ("dash_database, SQLite file, expire_after=1 day", "ours-expiry"),
                ("dash_database, :memory:", "ours-memory"),
            ]
        if workload == "threads":
            rows.append(("sqlite3 alone, one locked writer (floor)", "sqlite3"))
        if workload in ("single", "threads", "processes") and self.old:
            rows.append(("dash-database 1.0, file", "1.0"))
        if workload != "huge":
            rows.append(("diskcache", "diskcache"))
        if self.url:
            rows.append(("dash_database, Redis", "ours-redis"))
            if workload == "single":
                rows.append(("dash_database, Redis, expire_after=1 day", "ours-redis-expiry"))
            if workload in ("single", "threads", "processes"):
                rows.append(("redis-py alone", "redis"))
        if workload == "frame":
            rows.insert(0, ("pickle.dump + load to a file (reference)", "reference"))
        return rows

    def measure(self, workload: str, *numbers: int | float, rounds: int = 1) -> None:
        """Run ``workload`` on every engine that takes it.

        :param rounds: run every engine this many times, taking turns, and keep
            the median of each figure (for workloads timed once per run).
        """
        samples: dict[str, list[dict[str, Any]]] = {}
        for _ in range(rounds):
            for label, kind in self.engines(workload):
                print(f"{workload}: {label} ...", file=sys.stderr)
                samples.setdefault(label, []).append(self._once(workload, kind, numbers))
        self.results[workload] = {
            label: {key: _combine(key, [run[key] for run in runs]) for key in runs[0]}
            for label, runs in samples.items()
        }

    def _once(self, workload: str, kind: str, numbers: tuple[int | float, ...]) -> Any:
        location = ":memory:" if kind == "ours-memory" else self.location(kind)
        kind = "ours" if kind == "ours-memory" else kind
        args = [workload, kind, location, *map(str, numbers)]
        if kind == "1.0":
            assert self.old is not None
            return in_subprocess(self.old, *args)
        if workload in ("frame", "huge"):
            # A fresh process, so that its peak memory is this workload's.
            return in_subprocess(sys.executable, *args)
        return worker(args)


def _combine(key: str, values: list[Any]) -> Any:
    """One figure from several rounds: lost writes add up, anything else is the median."""
    if key == "lost":
        return sum(values)
    if isinstance(values[0], str):  # an outcome, e.g. "round-trips"
        return values[0]
    return statistics.median(values)


def _ratio(value: float, base: float | None) -> str:
    return "" if not base else f" ({value / base:.2f}x)"


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def report(run: Run, users: int, frame_mb: int) -> str:
    """The markdown tables, ratios and target verdicts."""
    single, lines = run.results["single"], []
    disk, old = single.get("diskcache"), single.get("dash-database 1.0, file")
    lines += [
        f"### One thread; a store of {users:,} users x 5 keys of 100 bytes",
        "",
        "| engine | store ops/s (x diskcache) | get ops/s (x diskcache) | list one user (ms) "
        "| delete one user (ms) |",
        "|---|---|---|---|---|",
    ]
    for label, r in single.items():
        store = f"{1 / r['store']:,.0f}" + _ratio(disk["store"], r["store"]) if disk else ""
        get = f"{1 / r['get']:,.0f}" + _ratio(disk["get"], r["get"]) if disk else ""
        lines.append(
            f"| {label} | {store} | {get} | {r['list'] * 1000:.3f} | {r['delete'] * 1000:.3f} |"
        )
    (scale_users,) = run.scale_users
    scale = run.results["scale"]["dash_database, SQLite file"]
    lines += ["", f"### A store of {scale_users:,} users x 5 keys", ""]
    lines += ["| engine | list one user (ms) | delete one user (ms) |", "|---|---|---|"]
    lines.append(
        f"| dash_database, SQLite file | {scale['list'] * 1000:.3f} "
        f"| {scale['delete'] * 1000:.3f} |"
    )
    pair = run.results.get("overhead", {}).get("dash_database, Redis vs redis-py alone")
    if pair:
        lines += [
            "",
            "### Redis backend over redis-py alone: median single calls, alternating",
            "",
        ]
        lines += [
            "| operation | dash_database (us) | redis-py alone (us) | ratio "
            "| redis-py, write as a one-line Lua script (us) | its ratio |",
            "|---|---|---|---|---|---|",
        ]
        for op in ("store", "get", "list"):
            ours_us, raw_us = pair["ours"][op] * 1e6, pair["raw"][op] * 1e6
            floor = pair["script"][op] * 1e6 if op == "store" else raw_us
            lines.append(
                f"| {op} | {ours_us:.0f} | {raw_us:.0f} | {ours_us / raw_us:.2f}x "
                f"| {floor:.0f} | {floor / raw_us:.2f}x |"
            )
    expiry = run.results["expiry"]["dash_database, SQLite file, expire_after=1 day vs none"]
    lines += ["", "### SQLite file with expire_after=1 day vs none: median single calls", ""]
    lines += ["| operation | expiry off (us) | expiry on (us) | ratio |", "|---|---|---|---|"]
    for op in ("store", "get", "list"):
        off_us, on_us = expiry["off"][op] * 1e6, expiry["on"][op] * 1e6
        lines.append(f"| {op} | {off_us:.0f} | {on_us:.0f} | {on_us / off_us:.2f}x |")
    threads_, procs = run.results["threads"], run.results["processes"]
    lines += ["", f"### {THREADS} threads, 80% reads / 20% writes, median of 3 runs", ""]
    lines += ["| engine | ops/s | p99 (ms) |", "|---|---|---|"]
    lines += [f"| {k} | {r['ops']:,.0f} | {r['p99'] * 1000:.2f} |" for k, r in threads_.items()]
    lines += ["", f"### {PROCESSES} processes writing to one store, median of 3 runs", ""]
    lines += ["| engine | writes/s | writes lost (all runs) |", "|---|---|---|"]
    lines += [f"| {k} | {r['writes']:,.0f} | {r['lost']} |" for k, r in procs.items()]
    frames = run.results["frame"]
    reference = frames["pickle.dump + load to a file (reference)"]["seconds"]
    lines += ["", f"### A {frame_mb} MB pandas DataFrame: store + get, median of 3 runs", ""]
    lines += [
        "| engine | store (s) | get (s) | total (s) | x reference | peak extra Python memory "
        "while storing (x value) |",
        "|---|---|---|---|---|---|",
    ]
    for label, r in frames.items():
        lines.append(
            f"| {label} | {r['store']:.2f} | {r['get']:.2f} | {r['seconds']:.2f} "
            f"| {r['seconds'] / reference:.2f} | {r['extra_memory']:.2f} |"
        )
    if "huge" in run.results:
        lines += ["", "### A 2.5 GB bytes value", "", "| engine | outcome | seconds |"]
        lines.append("|---|---|---|")
        for label, r in run.results["huge"].items():
            lines.append(f"| {label} | {r['outcome']} | {r.get('seconds', 0):.1f} |")

    ours, full = (
        single["dash_database, SQLite file"],
        single.get("dash_database, SQLite file, durability=full"),
    )
    frame = frames["dash_database, SQLite file"]
    targets = [
        (
            f"list and delete one user <= 1 ms at {users:,} users",
            f"{ours['list'] * 1000:.3f} ms, {ours['delete'] * 1000:.3f} ms",
            ours["list"] <= 1e-3 and ours["delete"] <= 1e-3,
        ),
        (
            f"list and delete one user <= 1 ms at {scale_users:,} users",
            f"{scale['list'] * 1000:.3f} ms, {scale['delete'] * 1000:.3f} ms",
            scale["list"] <= 1e-3 and scale["delete"] <= 1e-3,
        ),
        (
            f"list and delete >= 300x faster than 1.0 at {users:,} users",
            f"{old['list'] / ours['list']:,.0f}x, {old['delete'] / ours['delete']:,.0f}x"
            if old
            else "no 1.0",
            bool(old) and min(old["list"] / ours["list"], old["delete"] / ours["delete"]) >= 300,
        ),
        (
            "small reads >= diskcache",
            f"{disk['get'] / ours['get']:.2f}x" if disk else "no diskcache",
            bool(disk) and ours["get"] <= disk["get"],
        ),
        (
            "small writes >= 1.5x 1.0",
            f"{old['store'] / ours['store']:.2f}x" if old else "no 1.0",
            bool(old) and old["store"] / ours["store"] >= 1.5,
        ),
        (
            "read with expiry on <= 1.5x expiry off",
            f"{expiry['on']['get'] / expiry['off']['get']:.2f}x",
            expiry["on"]["get"] / expiry["off"]["get"] <= 1.5,
        ),
    ]
    t_ours, t_disk = threads_["dash_database, SQLite file"], threads_.get("diskcache")
    t_floor = threads_["sqlite3 alone, one locked writer (floor)"]
    targets.append(
        (
            "8 threads >= diskcache, p99 <= 2 ms",
            f"{t_ours['ops'] / t_disk['ops']:.2f}x, p99 {t_ours['p99'] * 1000:.2f} ms "
            f"(sqlite3 alone, no library code: p99 {t_floor['p99'] * 1000:.2f} ms)"
            if t_disk
            else "no diskcache",
            bool(t_disk) and t_ours["ops"] >= t_disk["ops"] and t_ours["p99"] <= 2e-3,
        )
    )
    p_ours, p_disk = procs["dash_database, SQLite file"], procs.get("diskcache")
    targets.append(
        (
            "4 processes >= diskcache, none lost",
            f"{p_ours['writes'] / p_disk['writes']:.2f}x, lost {p_ours['lost']}"
            if p_disk
            else "no diskcache",
            bool(p_disk) and p_ours["writes"] >= p_disk["writes"] and p_ours["lost"] == 0,
        )
    )
    targets.append(
        (
            f"{frame_mb} MB DataFrame <= 1.5x reference, memory <= 1.5x",
            f"{frame['seconds'] / reference:.2f}x, {frame['extra_memory']:.2f}x",
            frame["seconds"] / reference <= 1.5 and frame["extra_memory"] <= 1.5,
        )
    )
    if full:
        targets.append(
            (
                "durability=full cost (store)",
                f"{full['store'] / ours['store']:.2f}x the time of normal",
                True,
            )
        )
    if pair:
        ratios = {op: pair["ours"][op] / pair["raw"][op] for op in ("store", "get", "list")}
        detail = ", ".join(f"{op} {ratio:.2f}x" for op, ratio in ratios.items())
        floor = pair["script"]["store"] / pair["raw"]["store"]
        detail += f" (a write as any one-line Lua script: {floor:.2f}x)"
        targets.append(("Redis <= 1.2x redis-py alone", detail, max(ratios.values()) <= 1.2))
    lines += ["", "### Targets (issue #6), dash_database on a SQLite file unless named", ""]
    lines += ["| target | measured | verdict |", "|---|---|---|"]
    for name, measured, met in targets:
        verdict = "info" if name.startswith("durability") else _verdict(met)
        lines.append(f"| {name} | {measured} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    """Run every workload on every engine and print (and save) the report."""
    if sys.argv[1:2] == ["--worker"]:
        if sys.argv[3] != "1.0":
            sys.path.insert(0, str(ROOT))
        print(json.dumps(worker(sys.argv[2:])))
        return
    sys.path.insert(0, str(ROOT))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 2 minutes")
    parser.add_argument("--redis-url", help="use this server instead of starting one")
    parser.add_argument("--output", default="docs/benchmarks.md", help="markdown file to write")
    args = parser.parse_args()
    users, ops, frame_mb = (1_000, 300, 100) if args.quick else (10_000, 2_000, 400)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, redis_server(args.redis_url) as url:
        run = Run(folder, url, args.quick)
        run.measure("single", users, ops)
        run.scale_users = (10_000 if args.quick else 100_000,)
        run.measure("scale", *run.scale_users)
        run.measure("overhead", 300 if args.quick else 2_000)
        run.measure("expiry", 300 if args.quick else 2_000)
        # These take seconds per engine, so a burst of the machine's noise can
        # halve one engine's figure: each engine runs three times, taking turns.
        run.measure("threads", 300 if args.quick else 2_000, rounds=3)
        run.measure("processes", 300 if args.quick else 1_500, rounds=3)
        run.measure("frame", frame_mb, rounds=3)
        if not args.quick:
            run.measure("huge", 2.5)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
    elapsed = time.perf_counter() - started
    text = (
        f"Machine: {machine}. Command: `{command}` ({elapsed:.0f} s). Every figure is a median "
        "or a total from this one run; compare ratios, not absolute numbers.\n\n"
        + report(run, users, frame_mb)
        + "\n"
    )
    print(text)
    Path(args.output).write_text("# Benchmarks\n\n" + text)


if __name__ == "__main__":
    main()
