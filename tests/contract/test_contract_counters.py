"""The contract: counters exact after every kind of change, on every engine."""

from __future__ import annotations

from helpers import OpenDb, assert_counters_exact


def test_counters_stay_exact_through_every_kind_of_change(open_db: OpenDb) -> None:
    """Writes, replaces, big values, updates, deletes, renames and purges keep them exact."""
    db = open_db()
    db._backend.chunk_size = 1024
    db.store_user_value("a", "small", 1)
    db.store_user_value("a", "big", b"x" * 5000)
    db.store_user_value("a", "big", b"y" * 9000)  # a big value replaced by a bigger one
    db.store_user_value("a", "small", b"z" * 3000)  # a small value replaced by a big one
    db.store_user_value(7, 7, "seven")
    db.update_user_value(7, "n", lambda old: old + 1, default=0)
    db.update_user_value(7, "n", lambda old: old + 1)
    assert_counters_exact(db)
    db.delete_user_value("a", "small")
    db.rename_user(7, "renamed")
    assert_counters_exact(db)
    assert db.user_stats("renamed").keys == 2
    db.delete_all_user_values("a")
    assert_counters_exact(db)
    assert db.purge_expired(older_than=1e-9) == 1
    assert_counters_exact(db)
    assert db.stats().users == db.stats().keys == db.stats().bytes == 0


def test_stats_come_from_the_counters_and_check_reads_every_value(open_db: OpenDb) -> None:
    """stats() leaves missing unchecked (None); check=True reads the values and counts it."""
    db = open_db()
    db.store_user_value("u", "k", "v")
    assert db.stats().missing is None
    assert db.user_stats("u").missing is None
    assert db.inspect.stats(check=True).missing == 0
    assert db.inspect.user_stats("u", check=True).missing == 0
