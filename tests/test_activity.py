"""Activity bookkeeping shared by threads: one background purge per interval."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

from dash_database import DashDatabase
from dash_database.activity import REFRESH_FRACTION

from helpers import Clock

EXPIRE = 1600.0  # seconds
REFRESH = EXPIRE * REFRESH_FRACTION


def test_threads_at_one_moment_start_one_background_purge(clock: Clock) -> None:
    """Eight threads reading at the same instant start the background purge once, not 8 times."""

    with DashDatabase(":memory:", expire_after=EXPIRE) as db:
        engine = db._backend
        calls: list[float] = []
        original = engine.idle_users

        def counted(cutoff: float, limit: int) -> list[object]:
            calls.append(cutoff)
            return original(cutoff, limit)  # type: ignore[return-value]

        engine.idle_users = counted  # type: ignore[assignment, method-assign]
        start = threading.Barrier(8)

        def read() -> None:
            start.wait()
            db.get_user_value("someone", "k")

        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(calls) == 1
        clock.advance(REFRESH)  # the next interval: one more purge
        db.get_user_value("someone", "k")
        assert len(calls) == 2


def test_a_new_users_first_write_is_one_statement_with_its_activity(tmp_path: Path) -> None:
    """On a SQLite file, a new user's first write records its activity in the same statement."""
    with DashDatabase(tmp_path / "store.db") as db:
        statements: list[str] = []
        db._backend._conn._writer.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        db.store_user_value("u", "k", 1)
        db.store_user_value("u", "k2", 2)
        # Each trigger that fires repeats its statement's text; the trash is looked at once.
        calls = [text for text, _ in itertools.groupby(statements) if "_trash" not in text]
        assert [text.split()[0] for text in calls] == ["INSERT", "INSERT"]
        assert "dash_database_put_seen" in calls[0]
        assert "dash_database_put_seen" not in calls[1]
        assert db.user_stats("u").last_activity is not None
