"""This tree against an earlier revision, side by side: did a change cost speed?

Run from the project root (not collected by pytest)::

    python benchmarks/versions.py 253b9cb          # against 2.3.0
    python benchmarks/versions.py v2.3.0 --turns 5 --users 5000

Both trees run the same workloads (this tree's ``bench`` package) on a fresh store
each turn, in a process of their own, the two alternating turn after turn, so a
noisy moment hits both. Before each engine it waits for a quiet machine and prints
the other processes' CPU share. Each figure is the median of the turns with its
min-max; the ratio is this tree's median over the other's. A redis-server is
started on 127.0.0.1 for the Redis rows, whose last row is the server's time per
script call over the small workload (``INFO commandstats``, reset before each turn):
nearly all of them writes, since a read of a user written lately runs no script.
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from bench.method import Figure, wait_for_quiet  # noqa: E402
from bench.runner import redis_server  # noqa: E402

#: (workload, its figure, its argument): small writes and reads, 8 threads of 80% reads.
MEASURES = [("small", "writes"), ("small", "reads"), ("threads", "ops")]


def checkout(revision: str, folder: Path) -> Path:
    """The tree of ``revision`` of this repository, in ``folder``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True
    ).stdout
    folder.mkdir()
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def turn(tree: Path, workload: str, location: str, number: int) -> dict[str, float]:
    """One turn of ``workload`` on the dash_database of ``tree`` (the adapter "file" or
    "redis" at ``location``), in a fresh process."""
    env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{HERE}"}
    name = "redis" if location.startswith("redis") else "file"
    command = [sys.executable, "-m", "bench.worker", workload, name, location, str(number)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=HERE)
    if done.returncode:
        raise RuntimeError(f"{tree}: {workload} failed: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def server_stats(url: str, reset: bool = False) -> float:
    """The server's microseconds per ``EVALSHA`` since the last reset (after resetting, 0)."""
    import redis

    client = redis.Redis.from_url(url)
    if reset:
        client.config_resetstat()
        return 0.0
    return float(client.info("commandstats").get("cmdstat_evalsha", {}).get("usec_per_call", 0))


def main() -> None:
    """Print one Markdown table per engine: each figure for both trees, and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("revision", help="the earlier revision (a commit or tag)")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--users", type=int, default=2000, help="users of the small workload")
    parser.add_argument("--ops", type=int, default=1000, help="operations per thread")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, redis_server(None) as url:
        old = checkout(args.revision, Path(scratch) / "old")
        trees = {"this tree": ROOT, args.revision: old}
        engines = {"SQLite file": "file", "Redis": url}
        for engine, where in engines.items():
            if where is None:
                print(f"\n{engine}: no redis-server here, left out")
                continue
            share = wait_for_quiet()
            runs: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.turns):
                for label, tree in trees.items():
                    for workload, figure in MEASURES:
                        location = (
                            f"{url}#bench-{uuid.uuid4().hex}:"
                            if where == url
                            else str(Path(scratch) / f"{uuid.uuid4().hex}.sqlite3")
                        )
                        size = args.users if workload == "small" else args.ops
                        timed = where == url and workload == "small"
                        if timed:
                            server_stats(url, reset=True)
                        result = turn(tree, workload, location, size)
                        runs.setdefault((label, figure), []).append(result[figure])
                        if timed:
                            runs.setdefault((label, "script"), []).append(server_stats(url))
            print(f"\n### {engine} (other processes' CPU share before it: {share:.0%})\n")
            print(f"| figure | this tree | {args.revision} | ratio |\n|---|---|---|---|")
            for _, figure in MEASURES:
                mine, theirs = (Figure(tuple(runs[(t, figure)])) for t in trees)
                ratio = mine.median / theirs.median
                print(f"| {figure}/s | {mine.show()} | {theirs.show()} | {ratio:.2f}x |")
            if where == url:
                mine, theirs = (Figure(tuple(runs[(t, "script")])) for t in trees)
                ratio = mine.median / theirs.median
                row = f"{mine.show(digits=1)} | {theirs.show(digits=1)} | {ratio:.2f}x"
                print(f"| server us per script call (small) | {row} |")


if __name__ == "__main__":
    main()
