"""The memory engine: large values stream in chunks, and a deleted value is let go."""

from __future__ import annotations

import gc
import tracemalloc

from dash_database import DashDatabase


def test_a_deleted_large_value_leaves_nothing_referenced() -> None:
    """After a 40 MB value is deleted (or replaced), tracemalloc finds its memory freed."""
    with DashDatabase(":memory:") as db:
        db.store_user_value("warm-up", "k", b"x")  # the store's own structures, first
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            db.store_user_value("u", "big", bytes(40 * 1024 * 1024))
            assert tracemalloc.get_traced_memory()[0] - before > 40 * 1024 * 1024
            db.store_user_value("u", "big", b"small now")  # replaced
            gc.collect()
            assert tracemalloc.get_traced_memory()[0] - before < 1024 * 1024
            db.store_user_value("v", "big", bytes(40 * 1024 * 1024))
            db.delete_all_user_values("v")  # deleted with its user
            gc.collect()
            assert tracemalloc.get_traced_memory()[0] - before < 1024 * 1024
        finally:
            tracemalloc.stop()


def test_reading_a_large_value_holds_no_second_copy() -> None:
    """Reading a 40 MB value back peaks at about the value itself, not twice it."""
    with DashDatabase(":memory:") as db:
        db.store_user_value("u", "big", bytearray(40 * 1024 * 1024))
        gc.collect()
        tracemalloc.start()
        try:
            value = db.get_user_value("u", "big")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(value) == 40 * 1024 * 1024
        assert peak < 1.1 * len(value)
