"""Activity bookkeeping shared by threads: one background purge per interval."""

from __future__ import annotations

import threading

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
