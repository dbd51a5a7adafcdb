"""Dash's shared storage, side by side: ours on a file and on Redis against Dash's
DiskcacheSharedStorage, RedisSharedStorage and LocalSharedStorage, with bare sqlite3 and
bare redis-py as the limit.

Run from the project root, with Dash 4.5 installed (not collected by pytest)::

    python benchmarks/shared_storage.py [--turns 3] [--ops 5000] [--messages 200]

Each turn of each backend runs in a fresh process on a fresh store, the backends taking
their turns alternately, so a noisy moment hits them all; before each round the runner
waits for a quiet machine and records the other processes' CPU share. Figures:

* ``set`` and ``get``: operations per second, one after another, of a small JSON value
  (keys cycling over 1,000);
* latency: a second process subscribes, the first publishes ``--messages`` messages 5 ms
  apart, each holding the wall-clock time it was sent; the subscriber notes when each
  arrives (``poll`` with a 1 s timeout: each backend's own way to wait). p50 and p99 in ms.

Each figure is the median of the turns with its min-max.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from bench.method import Figure, wait_for_quiet  # noqa: E402
from bench.runner import redis_server  # noqa: E402

BACKENDS = [
    "dash_database, file",
    "dash_database, Redis",
    "Dash DiskcacheSharedStorage",
    "Dash RedisSharedStorage",
    "Dash LocalSharedStorage",
    "sqlite3, bare",
    "redis-py, bare",
]
VALUE = {"user": "someone", "count": 42, "items": ["a", "b", "c"], "ok": True}


class _BareSqlite:
    """The limit on a file: one table, a commit per set (WAL, synchronous=NORMAL)."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB)")

    def set(self, key: str, value: Any) -> None:
        self._conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, json.dumps(value)))

    def get(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def close(self) -> None:
        self._conn.close()


class _BareRedis:
    """The limit on Redis: GET and SET of JSON, and its own publish/subscribe."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self._client, self._prefix = redis.Redis.from_url(url), prefix

    def set(self, key: str, value: Any) -> None:
        self._client.set(self._prefix + key, json.dumps(value))

    def get(self, key: str) -> Any:
        found = self._client.get(self._prefix + key)
        return None if found is None else json.loads(found)

    def close(self) -> None:
        self._client.close()


def open_backend(name: str, where: str, extra: str) -> Any:
    """The backend ``name`` on the store at ``where`` (``extra``: a prefix or namespace)."""
    if name == "dash_database, file":
        from dash_database.dash import SharedStorage

        return SharedStorage(where)
    if name == "dash_database, Redis":
        from dash_database.dash import SharedStorage

        return SharedStorage(where, prefix=extra)
    from dash._shared_storage import (
        DiskcacheSharedStorage,
        LocalSharedStorage,
        RedisSharedStorage,
    )

    if name == "Dash DiskcacheSharedStorage":
        return DiskcacheSharedStorage(directory=where)
    if name == "Dash RedisSharedStorage":
        return RedisSharedStorage(url=where, key_prefix=extra)
    if name == "Dash LocalSharedStorage":
        return LocalSharedStorage(namespace=extra)
    if name == "sqlite3, bare":
        return _BareSqlite(where)
    return _BareRedis(where, extra)


def subscriber(name: str, where: str, extra: str, count: int) -> None:
    """Subscribe, say "ready", and print the latency of each of ``count`` messages (ms)."""
    store = open_backend(name, where, extra)
    getattr(store, "start", lambda: None)()
    if isinstance(store, _BareRedis):
        pubsub = store._client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(extra + "topic")
        print("ready", flush=True)
        delays = []
        while len(delays) < count:
            message = pubsub.get_message(timeout=1.0)
            if message is not None:
                delays.append((time.time() - json.loads(message["data"])) * 1000)
    else:
        subscription = store.subscribe("topic")
        print("ready", flush=True)
        delays = []
        while len(delays) < count:
            for _, sent in subscription.poll(1.0):
                delays.append((time.time() - sent) * 1000)
    print(json.dumps(delays), flush=True)
    store.close()


def turn(name: str, where: str, extra: str, ops: int, messages: int) -> dict[str, float]:
    """One turn of ``name`` in this process: set and get rates, then the latency."""
    store = open_backend(name, where, extra)
    getattr(store, "start", lambda: None)()
    keys = [f"key{n}" for n in range(1000)]
    started = time.perf_counter()
    for n in range(ops):
        store.set(keys[n % 1000], VALUE)
    sets = ops / (time.perf_counter() - started)
    started = time.perf_counter()
    for n in range(ops):
        store.get(keys[n % 1000])
    gets = ops / (time.perf_counter() - started)
    result = {"set": sets, "get": gets}
    if name != "sqlite3, bare":
        command = [sys.executable, __file__, "--subscriber", name, where, extra, str(messages)]
        reader = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "ready"
        for _ in range(messages):
            if isinstance(store, _BareRedis):
                store._client.publish(extra + "topic", json.dumps(time.time()))
            else:
                store.publish("topic", time.time())
            time.sleep(0.005)  # each message waited for, not read in a batch
        delays = json.loads(reader.stdout.readline())
        reader.wait()
        cuts = statistics.quantiles(delays, n=100)
        result |= {"p50": cuts[49], "p99": cuts[98]}
    store.close()
    return result


def run_turn(name: str, redis_url: str, folder: Path, ops: int, messages: int) -> dict[str, float]:
    """One turn of ``name`` in a fresh process, on a fresh store."""
    fresh = uuid.uuid4().hex[:12]
    where = {
        "dash_database, file": str(folder / f"{fresh}.sqlite3"),
        "Dash DiskcacheSharedStorage": str(folder / fresh),
        "sqlite3, bare": str(folder / f"{fresh}.sqlite3"),
    }.get(name, redis_url)
    extra = f"bench-{fresh}:"
    command = [sys.executable, __file__, "--turn", name, where, extra, str(ops), str(messages)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    """Measure every backend, turn after turn; print the table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in BACKENDS}
    shares = []
    with redis_server(None) as redis_url, tempfile.TemporaryDirectory() as folder:
        assert redis_url is not None, "a redis-server is needed"
        for _ in range(args.turns):
            shares.append(wait_for_quiet())
            for name in BACKENDS:
                results[name].append(
                    run_turn(name, redis_url, Path(folder), args.ops, args.messages)
                )
    print(
        f"\nOther processes' CPU share before each round: "
        f"{', '.join(f'{share:.0%}' for share in shares)}\n"
    )
    print(
        "| backend | set/s | get/s | latency p50 (ms) | latency p99 (ms) |\n|---|---|---|---|---|"
    )
    for name in BACKENDS:
        cells = [_cell(results[name], figure, digits) for figure, digits in FIGURES]
        print(f"| {name} | {' | '.join(cells)} |")


#: The table's figures, and the digits each is shown with.
FIGURES = [("set", 0), ("get", 0), ("p50", 2), ("p99", 2)]


def _cell(turns: list[dict[str, float]], figure: str, digits: int) -> str:
    if figure not in turns[0]:
        return "-"
    return Figure(tuple(t[figure] for t in turns)).show(digits=digits)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--subscriber"]:
        subscriber(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif sys.argv[1:2] == ["--turn"]:
        print(json.dumps(turn(*sys.argv[2:5], int(sys.argv[5]), int(sys.argv[6]))))
    else:
        main()
