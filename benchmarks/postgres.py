"""The PostgreSQL engine against bare psycopg doing the same statements (the limit row).

Run from the project root, with the postgres extra installed (not collected by pytest)::

    python benchmarks/postgres.py [--url postgresql://...] [--turns 3] [--users 2000]

Without ``--url`` it makes a private PostgreSQL cluster in a temporary folder
(``initdb``, as the tests do) on 127.0.0.1, with the server's default settings.

The limit row is psycopg 3 used the way its users use it: one autocommit
connection per process, a table keyed by ``(user, key)``, ``INSERT ... ON CONFLICT
DO UPDATE`` to write, ``SELECT`` to read, list and delete. Ours goes through the
public API with its defaults (pickle, checksums, counters kept by a trigger).

Figures, each the median of the turns with its min-max, the contenders taking their
turns alternately on fresh stores, after waiting for a quiet machine (the other
processes' CPU share is recorded):

* small writes and reads: 100-byte values, ``--users`` x 5 keys, one after another;
* 4 processes writing, each to users of its own;
* list and delete one user, at 100,000 users: ms per user, over 200 users per turn.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE), str(ROOT / "tests")]

from bench import workloads  # noqa: E402
from bench.method import Figure, ratio, wait_for_quiet  # noqa: E402
from bench.workloads import VALUE, list_and_delete  # noqa: E402

PROCESSES = 4
SCALE_USERS = 100_000
#: Users listed, then deleted, per turn: psycopg prepares a statement on its sixth run on a
#: connection, so a handful of calls would time PostgreSQL planning them, not running them.
LISTED = 200
OURS, BARE = "dash_database, PostgreSQL", "psycopg alone (limit)"


class Bare:
    """psycopg alone: one autocommit connection, a table keyed by ``(user, key)``."""

    def __init__(self, url: str, table: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.table = table
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} (u bigint, k bigint, v bytea, PRIMARY KEY (u, k))"
        )

    def store(self, user: int, key: int, value: bytes) -> None:
        self.conn.execute(
            f"INSERT INTO {self.table} VALUES (%s, %s, %s) "
            "ON CONFLICT (u, k) DO UPDATE SET v = excluded.v",
            (user, key, value),
        )

    def get(self, user: int, key: int) -> Any:
        return self.conn.execute(
            f"SELECT v FROM {self.table} WHERE u = %s AND k = %s", (user, key)
        ).fetchone()

    def list(self, user: int) -> list[Any]:
        return self.conn.execute(f"SELECT k FROM {self.table} WHERE u = %s", (user,)).fetchall()

    def delete_user(self, user: int) -> None:
        self.conn.execute(f"DELETE FROM {self.table} WHERE u = %s", (user,))

    def close(self) -> None:
        self.conn.close()


class Ours:
    """dash_database, through its public API."""

    def __init__(self, url: str, schema: str) -> None:
        from dash_database import DashDatabase

        self.db = DashDatabase(url, schema=schema)

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


def open_contender(name: str, url: str, place: str) -> Any:
    """``name`` on a store named ``place`` (a schema, or a table)."""
    return Ours(url, place) if name == OURS else Bare(url, place)


def small(name: str, url: str, users: int) -> dict[str, float]:
    """Writes/s then reads/s of 100-byte values over ``users`` x 5 keys, on a fresh store
    (the main benchmark's workload; its list and delete figures are left out here)."""
    engine = open_contender(name, url, f"bench_{uuid.uuid4().hex}")
    figures = workloads.small(engine, users)
    engine.close()
    return {"writes": figures["writes"], "reads": figures["reads"]}


def _writer(name: str, url: str, place: str, process: int, writes: int, first: int) -> None:
    engine = open_contender(name, url, place)
    for n in range(writes):
        engine.store(first + process * writes + n, 0, VALUE)
    engine.close()


def processes(name: str, url: str, place: str, writes: int, first: int = 0) -> float:
    """4 processes writing ``writes`` values each, to users of their own: writes/s."""
    open_contender(name, url, place).close()  # made once, before the writers start
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_writer, args=(name, url, place, n, writes, first))
        for n in range(PROCESSES)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if any(worker.exitcode for worker in workers):
        raise RuntimeError(f"a writer of {name} failed; its traceback is above")
    return PROCESSES * writes / (time.perf_counter() - started)


@contextmanager
def server(url: str | None) -> Iterator[str]:
    """``url``, or a private PostgreSQL cluster's, stopped at the end."""
    if url is not None:
        yield url
        return
    from helpers import PostgresServer

    made = PostgresServer()
    made.start()
    try:
        yield made.url
    finally:
        made.remove()


def main() -> None:
    """Run every figure and print the tables (Markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a PostgreSQL server to use (default: a private one)")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--writes", type=int, default=2500, help="per process")
    parser.add_argument("--scale", type=int, default=SCALE_USERS, help="users to list among")
    args = parser.parse_args()
    names = [OURS, BARE]
    figures: dict[tuple[str, str], list[float]] = {}
    shares: list[float] = []
    with server(args.url) as url:
        with psycopg.connect(url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        places = {name: f"bench_scale_{n}_{uuid.uuid4().hex[:8]}" for n, name in enumerate(names)}
        for name in names:  # --scale users each, filled once by 4 processes
            processes(name, url, places[name], args.scale // PROCESSES)
        for turn in range(args.turns):
            for name in names:
                shares.append(wait_for_quiet())
                for key, value in small(name, url, args.users).items():
                    figures.setdefault((name, key), []).append(value)
                shares.append(wait_for_quiet())
                place = f"bench_{uuid.uuid4().hex}"
                figures.setdefault((name, "processes"), []).append(
                    processes(name, url, place, args.writes)
                )
                shares.append(wait_for_quiet())
                engine = open_contender(name, url, places[name])
                chosen = list(range(turn * LISTED, (turn + 1) * LISTED))
                for key, value in list_and_delete(engine, chosen).items():
                    figures.setdefault((name, key), []).append(value)
                engine.close()
            print(f"turn {turn + 1} of {args.turns} done", file=sys.stderr)
    rows = [
        ("small writes/s", "writes", 0),
        ("small reads/s", "reads", 0),
        (f"{PROCESSES} processes writing, writes/s", "processes", 0),
        (f"list one user at {args.scale:,} users, ms", "list_ms", 3),
        (f"delete one user at {args.scale:,} users, ms", "delete_ms", 3),
    ]
    print(
        f"\n{args.turns} turns; other processes' CPU share before each round: "
        f"{min(shares):.0%}-{max(shares):.0%}\n"
    )
    print(f"| | {OURS} | {BARE} | ratio |")
    print("|---|---|---|---|")
    for label, key, digits in rows:
        ours, bare = Figure(tuple(figures[OURS, key])), Figure(tuple(figures[BARE, key]))
        # For times, lower is better: the ratio says how many times the limit's time.
        shown = ratio(ours, bare) if digits == 0 else ratio(ours, bare).replace("x", "x the time")
        print(f"| {label} | {ours.show(digits=digits)} | {bare.show(digits=digits)} | {shown} |")
    print(f"\nPostgreSQL {version}; psycopg {psycopg.__version__}; Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
