"""The workloads; each call is one turn on one engine, on a fresh store.

Users are spread as in a real app: many sessions, each touched a few times
per process, so per-process caches of recent users help as little as they
would in production.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import random
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from .adapters import ADAPTERS, Engine

VALUE = b"x" * 100
KEYS = 5
THREADS = 8
PROCESSES = 4


def small(engine: Engine, users: int) -> dict[str, float]:
    """Writes/s and reads/s of 100-byte values over ``users`` x 5 keys, then ms to list
    and to delete one user."""
    order = [(user, key) for key in range(KEYS) for user in range(users)]
    started = time.perf_counter()
    for user, key in order:
        engine.store(user, key, VALUE)
    writes = len(order) / (time.perf_counter() - started)
    started = time.perf_counter()
    for user, key in order:
        engine.get(user, key)
    reads = len(order) / (time.perf_counter() - started)
    # 20 users: diskcache with a key per value scans the whole store for each.
    chosen = random.Random(0).sample(range(users), min(20, users))
    return {"writes": writes, "reads": reads, **list_and_delete(engine, chosen)}


def list_and_delete(engine: Engine, users: list[int]) -> dict[str, float]:
    """Milliseconds to list, then to delete, each of ``users``, on average."""
    started = time.perf_counter()
    for user in users:
        engine.list(user)
    listed = (time.perf_counter() - started) / len(users)
    started = time.perf_counter()
    for user in users:
        engine.delete_user(user)
    deleted = (time.perf_counter() - started) / len(users)
    return {"list_ms": listed * 1e3, "delete_ms": deleted * 1e3}


def threads(engine: Engine, ops: int) -> dict[str, float]:
    """8 threads, 80% reads and 20% writes over 8 x 1,000 users: ops/s and p99 in ms."""
    for thread in range(THREADS):
        for user in range(1000):
            engine.store(thread * 1000 + user, 0, VALUE)
    latencies: list[float] = []

    def work(thread: int) -> None:
        rng, mine = random.Random(thread), []
        for _ in range(ops):
            user = thread * 1000 + rng.randrange(1000)
            started = time.perf_counter()
            if rng.random() < 0.8:
                engine.get(user, 0)
            else:
                engine.store(user, 0, VALUE)
            mine.append(time.perf_counter() - started)
        latencies.extend(mine)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    elapsed = _together(workers)
    latencies.sort()
    return {"ops": len(latencies) / elapsed, "p99_ms": latencies[len(latencies) * 99 // 100] * 1e3}


def _together(workers: list[Any]) -> float:
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started


def _writer(name: str, location: str, process: int, writes: int) -> None:
    engine = ADAPTERS[name].open(location)
    for n in range(writes):
        engine.store(process * writes + n, 0, VALUE)
    engine.close()


def processes(name: str, location: str, writes: int) -> dict[str, float]:
    """4 processes writing one store, each to users of its own: writes/s, and writes lost."""
    ADAPTERS[name].open(location).close()  # created once, before the writers start
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_writer, args=(name, location, n, writes)) for n in range(PROCESSES)
    ]
    elapsed = _together(workers)
    if any(worker.exitcode for worker in workers):
        raise RuntimeError(f"a writer of {name} failed; its traceback is above")
    engine = ADAPTERS[name].open(location)
    found = sum(bool(engine.get(user, 0)) for user in range(PROCESSES * writes))
    engine.close()
    return {"writes": PROCESSES * writes / elapsed, "lost": PROCESSES * writes - found}


def frame(name: str, location: str, megabytes: int) -> dict[str, float]:
    """Store and read back a DataFrame of ``megabytes`` (in a fresh process: see
    :func:`in_subprocess`): seconds, and the read's peak Python memory over the frame's."""
    import numpy as np
    import pandas as pd

    rows = megabytes * 1024 * 1024 // 16
    data = pd.DataFrame({"x": np.arange(rows), "y": np.random.default_rng(0).normal(size=rows)})
    engine = ADAPTERS[name].open(location)
    started = time.perf_counter()
    engine.store(1, 1, data)
    stored = time.perf_counter()
    tracemalloc.start()
    back = engine.get(1, 1)
    read = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert back.equals(data)
    engine.close()
    size = float(data.memory_usage().sum())
    return {"store_s": stored - started, "read_s": read - stored, "read_peak": peak / size}


def in_subprocess(python: str, workload: str, *args: str) -> dict[str, float]:
    """Run one turn of ``workload`` in a fresh process (its own peak memory, or 1.0's venv)."""
    here = Path(__file__).resolve().parent.parent
    # This tree's code for our own Python; 1.0's venv must see its own package only.
    env = {**os.environ, "PYTHONPATH": str(here.parent) if python == sys.executable else ""}
    command = [python, "-m", "bench.worker", workload, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=here, env=env)
    if done.returncode:
        raise RuntimeError(f"{workload} {args} failed: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def fill_file(name: str, path: str, users: int) -> None:
    """Fill a store of ``users`` x 5 keys fast, with SQL in one transaction (the scale
    workload measures listing and deleting, not filling)."""
    engine = ADAPTERS[name].open(path)
    engine.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    if name == "sqlite3":
        rows: Any = ((u, k, VALUE) for u in range(users) for k in range(KEYS))
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", rows)
    else:
        record = b"P" + pickle.dumps(VALUE, protocol=5)
        rows = (
            (f"[{u},{k}]", record, str(u), len(record)) for u in range(users) for k in range(KEYS)
        )
        conn.executemany(
            "INSERT INTO dash_database (key, value, user, size) VALUES (?, ?, ?, ?)", rows
        )
    conn.execute("COMMIT")
    conn.close()


def scale(engine: Engine, users: int, turn: int) -> dict[str, float]:
    """ms to list and to delete one user in a store of ``users`` x 5 keys (100 users a turn)."""
    return list_and_delete(engine, random.Random(turn).sample(range(users), 100))


def main() -> None:
    """``python -m bench.worker WORKLOAD NAME LOCATION NUMBER``: one turn, as JSON."""
    workload, name, location, number = sys.argv[1:5]
    if workload == "frame":
        result = frame(name, location, int(number))
    else:
        engine = ADAPTERS[name].open(location)
        result = (threads if workload == "threads" else small)(engine, int(number))
        engine.close()
    print(json.dumps(result))
