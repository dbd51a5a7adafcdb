"""A contended Redis update ends within its timeout, and no acknowledged increment is lost."""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from pathlib import Path

from dash_database import DashDatabase
from dash_database.exceptions import StorageError

SPAWN = multiprocessing.get_context("spawn")
TIMEOUT = 2.0


def updater(url: str, prefix: str, seconds: float, out: str) -> None:
    """Increment one counter until the time is up; write what happened to ``out``."""
    done, errors, longest, tries_per_error = 0, [], 0.0, []
    with DashDatabase(url, prefix=prefix, timeout=TIMEOUT) as db:
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            start = time.monotonic()
            try:
                db.update_user_value("user", "counter", lambda n: n + 1, default=0)
                done += 1
            except StorageError as exc:
                errors.append(type(exc).__name__)
                tries_per_error.append(str(exc))
            longest = max(longest, time.monotonic() - start)
    Path(out).write_text(json.dumps({"done": done, "errors": errors, "longest": longest}))


def writer(url: str, prefix: str, seconds: float) -> None:
    """Write other keys of the same user as fast as it can."""
    with DashDatabase(url, prefix=prefix, timeout=TIMEOUT) as db:
        stop, n = time.monotonic() + seconds, 0
        while time.monotonic() < stop:
            db.store_user_value("user", f"other-{n % 10}", n)
            n += 1


def contend(url: str, folder: Path, seconds: float) -> tuple[int, list[dict[str, object]]]:
    """Run 4 updaters and 2 writers on one user; return the final counter and each report."""
    prefix = f"test-contention-{uuid.uuid4().hex}:"
    outs = [str(folder / f"updater{i}.json") for i in range(4)]
    processes = [SPAWN.Process(target=updater, args=(url, prefix, seconds, o)) for o in outs]
    processes += [SPAWN.Process(target=writer, args=(url, prefix, seconds)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=seconds + 60)
        assert process.exitcode == 0
    with DashDatabase(url, prefix=prefix) as db:
        counter = db.get_user_value("user", "counter", 0)
        db.delete_all_user_values("user")
    return counter, [json.loads(Path(o).read_text()) for o in outs]


def test_contended_updates_end_within_their_timeout(redis_url: str, tmp_path: Path) -> None:
    """4 updaters and 2 writers for 20 s: each update ends in 3x its timeout, none is lost."""
    counter, reports = contend(redis_url, tmp_path, 20.0)
    assert counter == sum(int(r["done"]) for r in reports)  # type: ignore[call-overload]
    assert max(float(r["longest"]) for r in reports) <= 3 * TIMEOUT  # type: ignore[arg-type]
    assert all(set(r["errors"]) <= {"StorageError"} for r in reports)  # type: ignore[call-overload]
    assert counter > 100  # they got through, not only timed out
