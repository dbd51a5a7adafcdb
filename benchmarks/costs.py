"""What one option costs per call: each option measured beside the same store without it.

Run from the project root (not collected by pytest)::

    python benchmarks/costs.py              # prints the Markdown tables
    python benchmarks/costs.py --turns 5 --ops 4000 --frame-mb 400

Method: the variants of one comparison run in alternating order, turn after
turn, each on a fresh store of its own, so a noisy moment hits both; every
figure is the median of the turns with its min-max, and the ratio is of the
medians. Before each engine it waits (up to a minute) for the other
processes' CPU share to fall under 25%, and prints the share it measured.
Small values: 100 bytes, over 1,000 users x 5 keys, as a Dash app spreads them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench.method import wait_for_quiet
from bench.runner import redis_server

from dash_database import DashDatabase

VALUE = b"x" * 100
USERS, KEYS = 1000, 5

#: One variant: a label, and the options it opens the store with.
Variant = tuple[str, dict[str, Any]]

COMPARISONS: dict[str, list[Variant]] = {
    "signing": [("unsigned", {}), ("secret_key=32 bytes", {"secret_key": b"k" * 32})],
    "byte quota": [
        ("no quota", {}),
        ("max_bytes_per_user=10 MB", {"max_bytes_per_user": 10_000_000}),
        (
            "max_bytes_per_user=10 MB, max_total_bytes=10 GB",
            {
                "max_bytes_per_user": 10_000_000,
                "max_total_bytes": 10_000_000_000,
            },
        ),
    ],
}


def calls_per_second(db: DashDatabase, ops: int, call: str) -> float:
    """Small writes (``call="store"``) or reads per second over the spread users."""
    started = time.perf_counter()
    for n in range(ops):
        user, key = n % USERS, (n // USERS) % KEYS
        if call == "store":
            db.store_user_value(user, key, VALUE)
        else:
            db.get_user_value(user, key)
    return ops / (time.perf_counter() - started)


@contextmanager
def opened(engine: str, folder: str, options: dict[str, Any]) -> Iterator[DashDatabase]:
    """A fresh store on ``engine`` (``"sqlite"`` or a Redis URL) with ``options``."""
    if engine == "sqlite":
        location: str = os.path.join(folder, f"{uuid.uuid4().hex}.sqlite3")
        db = DashDatabase(location, **options)
    else:
        db = DashDatabase(engine, prefix=f"bench-{uuid.uuid4().hex}:", **options)
    try:
        yield db
    finally:
        if engine != "sqlite":
            for user in range(USERS):
                db.delete_all_user_values(user)
        db.close()


def compare(engine: str, variants: list[Variant], turns: int, ops: int) -> list[list[float]]:
    """Writes/s then reads/s per turn of each variant, run in alternating order."""
    results: list[list[float]] = [[] for _ in variants]
    reads: list[list[float]] = [[] for _ in variants]
    with tempfile.TemporaryDirectory() as folder:
        for turn in range(turns):
            order = list(range(len(variants)))
            if turn % 2:
                order.reverse()
            for index in order:
                with opened(engine, folder, variants[index][1]) as db:
                    results[index].append(calls_per_second(db, ops, "store"))
                    reads[index].append(calls_per_second(db, ops, "get"))
    return [*results, *reads]


def _figure(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def table(name: str, engine: str, turns: int, ops: int) -> list[str]:
    """The Markdown table of one comparison on one engine."""
    variants = COMPARISONS[name]
    share = wait_for_quiet()
    figures = compare(engine, variants, turns, ops)
    writes, reads = figures[: len(variants)], figures[len(variants) :]
    label = "SQLite file" if engine == "sqlite" else "Redis"
    lines = [
        f"#### {name}, {label} (other processes' CPU share before: {share:.0%})",
        "",
        "| variant | writes/s, median (min-max) | ratio | reads/s, median (min-max) | ratio |",
        "|---|---|---|---|---|",
    ]
    for (label_, _), w, r in zip(variants, writes, reads, strict=True):
        row = [label_, _figure(w), _ratio(w, writes[0]), _figure(r), _ratio(r, reads[0])]
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def _ratio(values: list[float], base: list[float]) -> str:
    """The ratio of medians; one whose range overlaps the base's is marked as noise."""
    ratio = statistics.median(values) / statistics.median(base)
    overlap = values != base and min(values) <= max(base) and min(base) <= max(values)
    return f"{ratio:.2f}x" + (" (ranges overlap: noise)" if overlap else "")


def frame_round_trip(folder: str, secret_key: bytes | None, megabytes: int) -> tuple[float, float]:
    """Seconds to store, then to read, a DataFrame of ``megabytes`` on a SQLite file."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"x": np.arange(megabytes * 1024 * 1024 // 8, dtype="float64")})
    path = os.path.join(folder, f"{uuid.uuid4().hex}.sqlite3")
    with DashDatabase(path, secret_key=secret_key) as db:
        started = time.perf_counter()
        db.store_user_value("u", "frame", frame)
        stored = time.perf_counter()
        assert len(db.get_user_value("u", "frame")) == len(frame)
        return stored - started, time.perf_counter() - stored


def frame_table(turns: int, megabytes: int) -> list[str]:
    """Signing's cost on a large DataFrame (SQLite file), side by side."""
    share = wait_for_quiet()
    runs: dict[str, list[tuple[float, float]]] = {"unsigned": [], "secret_key=32 bytes": []}
    keys = {"unsigned": None, "secret_key=32 bytes": b"k" * 32}
    with tempfile.TemporaryDirectory() as folder:
        for turn in range(turns):
            for name in sorted(runs, reverse=bool(turn % 2)):
                runs[name].append(frame_round_trip(folder, keys[name], megabytes))
    lines = [
        f"#### signing, a {megabytes} MB DataFrame, SQLite file "
        f"(other processes' CPU share before: {share:.0%})",
        "",
        "| variant | store, s, median (min-max) | ratio | read, s, median (min-max) | ratio |",
        "|---|---|---|---|---|",
    ]
    base = runs["unsigned"]
    for name, results in runs.items():
        row = [name]
        for part in (0, 1):
            values = [r[part] for r in results]
            row += [_seconds(values), _ratio(values, [r[part] for r in base])]
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def _seconds(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    """Run every comparison on a SQLite file and on Redis; print Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5, help="turns per variant (at least 3)")
    parser.add_argument("--ops", type=int, default=5000, help="calls per turn")
    parser.add_argument("--redis-url", help="use this server instead of starting one")
    parser.add_argument("--frame-mb", type=int, default=400, help="DataFrame size (0: skip)")
    args = parser.parse_args()
    turns = max(args.turns, 3)
    lines = [
        f"`python benchmarks/costs.py --turns {turns} --ops {args.ops} --frame-mb {args.frame_mb}`",
        "",
    ]
    with redis_server(args.redis_url) as url:
        engines = ["sqlite", *([url] if url else [])]
        for name in COMPARISONS:
            for engine in engines:
                lines += table(name, engine, turns, args.ops)
    if args.frame_mb:
        lines += frame_table(turns, args.frame_mb)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
