"""What each serializer and compression cost on large values: a table of app data, an array.

Run from the project root (not collected by pytest)::

    python benchmarks/serializers.py                 # 400 MB DataFrame, 1 GB array, 3 turns
    python benchmarks/serializers.py --frame-mb 40 --array-mb 100 --turns 3

For each engine (SQLite file, Redis) and each way to store (pickle; the code-free
``data`` serializer; each with ``compress="zstd"``), one turn stores the value in a fresh
process (timed), then reads it in another fresh process (timed), where the read's peak
memory is the RSS high-water mark (reset just before the read) minus the RSS before it.
The ways take their turns alternately; each figure is the median of the turns with its
min-max. Before each engine it waits for a quiet machine and prints the other processes'
CPU share. The limit row is a plain ``pickle.dumps``/``loads`` in memory: no storage.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from bench.method import Figure, wait_for_quiet  # noqa: E402
from bench.runner import redis_server  # noqa: E402

WAYS: dict[str, dict[str, Any]] = {
    "pickle": {"serializer": "pickle"},
    "pickle + zstd": {"serializer": "pickle", "compress": "zstd"},
    "data": {"serializer": "data"},
    "data + zstd": {"serializer": "data", "compress": "zstd"},
}
WORDS = ["Paris", "Lyon", "Marseille", "Lille", "Nantes", "Bordeaux", "Nice", "Rennes"] * 4


def app_frame(megabytes: int) -> Any:
    """A DataFrame shaped like an app's data: a city from a small vocabulary, a date, a small
    quantity and a price in cents, about ``megabytes`` in memory (``deep=True``)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = megabytes * 1024 * 1024 // 40
    return pd.DataFrame(
        {
            "city": pd.array(rng.choice(WORDS, rows), dtype=object),
            "date": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), "D"),
            "quantity": rng.integers(1, 20, rows).astype("int64"),
            "price": np.round(rng.uniform(1, 500, rows), 2),
        }
    )


def make(value: str, megabytes: int) -> Any:
    """The value to store: ``frame`` or ``array``."""
    import numpy as np

    if value == "frame":
        return app_frame(megabytes)
    return np.random.default_rng(1).normal(size=megabytes * 1024 * 1024 // 8)


def _rss() -> tuple[int, int]:
    """This process's resident and peak resident memory, in bytes (Linux)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def worker(step: str, value: str, megabytes: int, location: str, options: str) -> None:
    """One step of a turn in this fresh process; prints its figures as JSON."""
    import time

    from dash_database import DashDatabase

    url, _, prefix = location.partition("#")
    opened = {**json.loads(options), **({"prefix": prefix} if prefix else {})}
    with DashDatabase(url, **opened) as db:
        if step == "store":
            data = make(value, megabytes)
            started = time.perf_counter()
            db.store_user_value("u", "v", data)
            result = {"store_s": time.perf_counter() - started}
            result["stored_bytes"] = float(db.inspect.key_sizes("u")["v"] or 0)
            result["memory"] = float(
                data.memory_usage(deep=True).sum() if value == "frame" else data.nbytes
            )
        else:
            # What an app that stores these values has loaded already.
            import numpy  # noqa: F401
            import pandas  # noqa: F401
            import pyarrow  # noqa: F401
            import zstandard  # noqa: F401

            Path("/proc/self/clear_refs").write_text("5")  # resets the RSS high-water mark
            before = _rss()[0]
            started = time.perf_counter()
            back = db.get_user_value("u", "v")
            result = {"read_s": time.perf_counter() - started, "peak": float(_rss()[1] - before)}
            expected = make(value, megabytes)
            same = back.equals(expected) if value == "frame" else (back == expected).all()
            assert same, "the value read back differs"
            db.delete_all_user_values("u")  # a turn leaves nothing behind (Redis is RAM)
    print(json.dumps(result))


def _turn(step: str, value: str, megabytes: int, location: str, way: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    options = json.dumps(WAYS[way])
    command = [sys.executable, __file__, "--worker", step, value, str(megabytes), location, options]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{way} {step} {value}: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def _limit(value: str, megabytes: int) -> dict[str, float]:
    """A plain pickle.dumps and loads in memory, timed (in this process)."""
    import pickle
    import time

    data = make(value, megabytes)
    started = time.perf_counter()
    dumped = pickle.dumps(data, protocol=5)
    middle = time.perf_counter()
    pickle.loads(dumped)
    return {"store_s": middle - started, "read_s": time.perf_counter() - middle}


def main() -> None:
    """Print one Markdown table per engine and value."""
    if sys.argv[1:2] == ["--worker"]:
        step, value, megabytes, location, options = sys.argv[2:7]
        worker(step, value, int(megabytes), location, options)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frame-mb", type=int, default=400)
    parser.add_argument("--array-mb", type=int, default=1024)
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    sizes = {"frame": args.frame_mb, "array": args.array_mb}
    with tempfile.TemporaryDirectory() as scratch, redis_server(None) as url:
        for engine in ("SQLite file", "Redis"):
            if engine == "Redis" and url is None:
                print("\nRedis: no redis-server here, left out")
                continue
            share = wait_for_quiet()
            for value, megabytes in sizes.items():
                runs: dict[tuple[str, str], list[float]] = {}
                for _ in range(args.turns):
                    limit = _limit(value, megabytes)
                    for figure in ("store_s", "read_s"):
                        runs.setdefault(("pickle in memory (limit)", figure), []).append(
                            limit[figure]
                        )
                    for way in WAYS:
                        where = (
                            f"{url}#bench-{uuid.uuid4().hex}:"
                            if engine == "Redis"
                            else str(Path(scratch) / f"{uuid.uuid4().hex}.sqlite3")
                        )
                        for step in ("store", "read"):
                            for figure, number in _turn(step, value, megabytes, where, way).items():
                                runs.setdefault((way, figure), []).append(number)
                _report(engine, value, megabytes, share, runs)


def _trips(runs: dict[tuple[str, str], list[float]], way: str) -> Figure:
    """The round trips (store then read) of ``way``, turn by turn."""
    pairs = zip(runs[(way, "store_s")], runs[(way, "read_s")], strict=True)
    return Figure(tuple(store + read for store, read in pairs))


def _report(
    engine: str, value: str, megabytes: int, share: float, runs: dict[tuple[str, str], list[float]]
) -> None:
    memory = Figure(tuple(runs[("pickle", "memory")])).median
    what = "DataFrame" if value == "frame" else "array"
    print(f"\n### {engine}, a {megabytes} MB {what} ({memory / 2**20:,.0f} MB in memory)\n")
    print(f"Other processes' CPU share before this engine: {share:.0%}.\n")
    print("| way | store s | read s | round trip vs pickle | read peak / in memory | stored MB |")
    print("|---|---|---|---|---|---|")
    base = _trips(runs, "pickle").median
    for way in ["pickle in memory (limit)", *WAYS]:
        store, read = Figure(tuple(runs[(way, "store_s")])), Figure(tuple(runs[(way, "read_s")]))
        ratio = _trips(runs, way).median / base
        extra = "- | -"
        if way in WAYS:
            peak = Figure(tuple(runs[(way, "peak")])).median / memory
            extra = f"{peak:.2f}x | {Figure(tuple(runs[(way, 'stored_bytes')])).show(1 / 2**20)}"
        times = f"{store.show(digits=2)} | {read.show(digits=2)}"
        print(f"| {way} | {times} | {ratio:.2f}x | {extra} |")


if __name__ == "__main__":
    main()
