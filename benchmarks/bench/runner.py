"""Runs every workload on every engine, in turns, and writes ``docs/benchmarks.md``.

    python benchmarks/run.py                # the full run (about 40 minutes here)
    python benchmarks/run.py --quick        # smaller sizes, under 2 minutes
    python benchmarks/run.py --with-1.0     # also dash-database 1.0, in its own venv

A redis-server is started on 127.0.0.1 when one is installed and no
``--redis-url`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import report, workloads
from .adapters import ADAPTERS
from .method import Figure, wait_for_quiet

OLD_VENV = Path.home() / ".cache" / "dash_database-bench" / "venv-1.0"
#: Sizes: (users for small, ops per thread, writes per process, frame MB, scale users).
SIZES = {
    "full": (10_000, 2_000, 2_500, 400, (100_000, 1_000_000)),
    "quick": (1_000, 300, 300, 40, (10_000,)),
}


@contextmanager
def redis_server(url: str | None) -> Iterator[str | None]:
    """The given URL, or a throwaway local redis-server, or ``None``."""
    if url or not shutil.which("redis-server"):
        yield url
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
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


def old_python() -> str:
    """The python of a virtual environment holding dash-database 1.0 (made once)."""
    python = OLD_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(OLD_VENV)], check=True)
        install = [str(python), "-m", "pip", "install", "-q", "dash_database==1.0", "redis"]
        subprocess.run(install, check=True)
    return str(python)


class Run:
    """One run: each table's engines take their turns alternately; results by table.

    :param folder: where stores go.
    :param url: a Redis server, or ``None`` (its rows are left out).
    :param turns: turns per engine (at least 3).
    """

    def __init__(self, folder: str, url: str | None, turns: int) -> None:
        self.folder, self.url, self.turns = folder, url, max(turns, 3)
        self.results: dict[str, dict[str, dict[str, Figure]]] = {}
        self.noise: dict[str, float] = {}
        self.small_users = 0
        #: Seconds over which the other processes' CPU share is measured.
        self.window = 1.0

    def location(self, name: str) -> str:
        """A fresh location for one turn of one engine."""
        where, tag = ADAPTERS[name].where, uuid.uuid4().hex[:12]
        if where == "redis":
            return f"{self.url}#bench-{tag}:"
        if where == "folder":
            return os.path.join(self.folder, f"{name}-{tag}")
        return os.path.join(self.folder, f"{name}-{tag}.sqlite3")

    def engines(self, names: list[str]) -> list[str]:
        """The engines of ``names`` that this machine can run."""
        return [n for n in names if self.url or ADAPTERS[n].where != "redis"]

    def table(
        self, title: str, names: list[str], turn: Callable[[str, int], dict[str, float]]
    ) -> None:
        """Run ``turn(engine, n)`` for every engine, turn after turn, in alternating order."""
        names = self.engines(names)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
        noise = 0.0
        for n in range(self.turns):
            for name in names if n % 2 == 0 else names[::-1]:
                if n == 0:  # before each engine: wait for a quiet machine, note its share
                    noise = max(noise, wait_for_quiet(self.window))
                print(f"{title}: {ADAPTERS[name].label}, turn {n + 1}", file=sys.stderr)
                samples[name].append(turn(name, n))
        self.noise[title] = noise
        self.results[title] = {
            name: {key: Figure(tuple(s[key] for s in runs)) for key in runs[0]}
            for name, runs in samples.items()
        }

    def opened(self, name: str, work: Callable[[Any], dict[str, float]]) -> dict[str, float]:
        """One turn of ``work`` on a fresh store of ``name``."""
        engine = ADAPTERS[name].open(self.location(name))
        try:
            return work(engine)
        finally:
            engine.close()


def run_all(run: Run, size: str, with_old: bool) -> None:
    """Every table of the report."""
    users, ops, writes, megabytes, scales = SIZES[size]
    run.small_users = users
    small = ["file", "sqlite3", "sqlite3-wr", "memory", "diskcache-keys", "diskcache-dicts"]
    small += ["redis", "redis-py"]
    old = old_python() if with_old else None

    def small_turn(name: str, _: int) -> dict[str, float]:
        if name == "1.0":
            assert old is not None
            return workloads.in_subprocess(old, "small", name, run.location(name), str(users))
        return run.opened(name, lambda engine: workloads.small(engine, users))

    run.table("small", small + (["1.0"] if old else []), small_turn)
    run.table(
        "threads",
        ["file", "sqlite3", "sqlite3-wr", "memory", "diskcache-keys", "redis", "redis-py"],
        lambda name, _: run.opened(name, lambda engine: workloads.threads(engine, ops)),
    )
    run.table(
        "processes",
        ["file", "sqlite3", "sqlite3-wr", "diskcache-keys", "redis", "redis-py"],
        lambda name, _: workloads.processes(name, run.location(name), writes),
    )
    run.table(
        "frame",
        ["file", "memory", "diskcache-keys"],
        lambda name, _: workloads.in_subprocess(
            sys.executable, "frame", name, run.location(name), str(megabytes)
        ),
    )
    for count in scales:
        stores = {name: run.location(name) for name in ("file", "sqlite3")}
        for name, path in stores.items():
            workloads.fill_file(name, path, count)

        def scale_turn(
            name: str, n: int, count: int = count, stores: dict[str, str] = stores
        ) -> dict[str, float]:
            engine = ADAPTERS[name].open(stores[name])
            try:
                return workloads.scale(engine, count, n)
            finally:
                engine.close()

        run.table(f"scale {count}", ["file", "sqlite3"], scale_turn)


def main() -> None:
    """Parse the arguments, run, and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 2 minutes")
    parser.add_argument("--turns", type=int, default=3, help="turns per engine (at least 3)")
    parser.add_argument("--with-1.0", dest="with_old", action="store_true", help="also 1.0")
    parser.add_argument("--redis-url", help="use this server instead of starting one")
    parser.add_argument("--output", default="docs/benchmarks.md", help="Markdown file to write")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder, redis_server(args.redis_url) as url:
        run = Run(folder, url, args.turns)
        run.window = 0.3 if args.quick else 1.0
        run_all(run, "quick" if args.quick else "full", args.with_old)
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = report.render(run, command.strip(), machine, time.monotonic() - started)
    Path(args.output).write_text(text)
    print(f"wrote {args.output}", file=sys.stderr)
