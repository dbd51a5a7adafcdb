"""Each rule, written once in Python and again where SQL or Lua must apply it, checked on one
table of cases on every engine: the quotas, dropping an idle user, activity never moving
back, and a value's stored size.

The Python definitions are :meth:`Quotas.check`, :meth:`Touch.outcome` and
:func:`records.stored_size`; the memory engine applies them as they are, the SQLite engine
through its SQL, and Redis through its Lua scripts.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from dash_database import DashDatabase
from dash_database.activity import Touch
from dash_database.exceptions import QuotaExceededError
from dash_database.records import body_start, stored_size

from helpers import KEY, OpenDb

NOW = 1_800_000_000.0

# stored activity, touch (refresh_before, drop_before, create), what the call leaves:
# (the user's values kept, the stored activity after)
TOUCHES: list[tuple[float | None, tuple[float, float | None, bool], tuple[bool, float | None]]] = [
    # a read of a user recorded lately: nothing to do
    (NOW - 10, (NOW - 60, None, False), (True, NOW - 10)),
    # a read of a user recorded long ago: refreshed to now
    (NOW - 100, (NOW - 60, None, False), (True, NOW)),
    # a read never creates activity
    (None, (NOW - 60, None, False), (True, None)),
    # a write records now, and creates activity
    (None, (math.inf, None, True), (True, NOW)),
    (NOW - 100, (math.inf, None, True), (True, NOW)),
    # never back in time: a stored time later than now (another process's clock) stays
    (NOW + 50, (math.inf, None, True), (True, NOW + 50)),
    (NOW + 50, (NOW - 60, None, False), (True, NOW + 50)),
    # an idle user is dropped first; a read then finds nothing, a write starts afresh
    (NOW - 5000, (NOW - 60, NOW - 3600, False), (False, None)),
    (NOW - 5000, (math.inf, NOW - 3600, True), (False, NOW)),
    # a user active since the cutoff is kept
    (NOW - 100, (NOW - 60, NOW - 3600, False), (True, NOW)),
]


def test_the_python_rule_gives_the_table() -> None:
    """Touch.outcome, the one definition, gives each row of the table."""
    for seen, (refresh, drop, create), (kept, after) in TOUCHES:
        dropped, store = Touch(NOW, refresh, drop, create).outcome(seen)
        assert dropped is not kept
        assert (store if store is not None else None if dropped else seen) == after


@pytest.mark.parametrize("call", ["read", "write"])
def test_every_engine_applies_a_touch_as_the_table_says(open_db: OpenDb, call: str) -> None:
    """Each engine, in its own language, drops and records activity as Touch.outcome does."""
    db = open_db()
    engine = db._backend
    rows = [row for row in TOUCHES if row[1][2] is (call == "write")]
    # Each user starts with a value copied in as stored, which records no activity on any
    # engine (a plain write does on Redis, whose activity can be lost apart from values).
    engine.set("template", "old", "value", None)
    raw = engine.read_raw("template", "old")
    assert raw is not None
    head, body = raw[0], b"".join(raw[1])
    for number, (seen, (refresh, drop, create), (kept, after)) in enumerate(rows):
        user = f"user {number}"
        engine.write_raw(user, "old", head, [body])
        if seen is not None:
            engine.mark_seen(user, seen, create=True)
        touch = Touch(NOW, refresh, drop, create)
        if call == "write":
            engine.set(user, "new", "value", touch)
        else:
            engine.get(user, "old", touch)
        assert (engine.get(user, "old", None)[0] == "value") is kept, user
        assert engine.seen(user) == after, user


def _usage(db: DashDatabase) -> int:
    """The stored bytes of one probe value, as every engine stores it."""
    db.store_user_value("probe", "k", b"x" * 100)
    size = db.inspect.key_sizes("probe")["k"]
    db.delete_all_user_values("probe")
    assert size is not None
    return size


# limits (bytes in values of one size), the values users hold first, the write, the limit it passes
QUOTAS: list[tuple[dict[str, int], list[tuple[str, str]], tuple[str, str], str | None]] = [
    ({"max_keys_per_user": 2}, [("a", "1"), ("a", "2")], ("a", "3"), "max_keys_per_user"),
    ({"max_keys_per_user": 2}, [("a", "1"), ("a", "2")], ("a", "2"), None),
    ({"max_keys_per_user": 2}, [("a", "1"), ("a", "2")], ("b", "1"), None),
    ({"max_bytes_per_user": 2}, [("a", "1"), ("a", "2")], ("a", "3"), "max_bytes_per_user"),
    ({"max_bytes_per_user": 2}, [("a", "1"), ("a", "2")], ("a", "1"), None),
    ({"max_total_bytes": 3}, [("a", "1"), ("a", "2"), ("b", "1")], ("b", "2"), "max_total_bytes"),
    ({"max_total_bytes": 3}, [("a", "1"), ("a", "2"), ("b", "1")], ("b", "1"), None),
]


def test_every_engine_checks_the_quotas_as_the_table_says(open_db: OpenDb) -> None:
    """Quotas.check in Python (memory, SQLite) and its Lua form (Redis) refuse the same writes."""
    size = _usage(open_db())
    for limits, before, (user, key), passed in QUOTAS:
        unit = {"max_keys_per_user": 1}  # the byte limits count values of one size
        db = open_db(**{name: count * unit.get(name, size) for name, count in limits.items()})
        for holder, name in before:
            db.store_user_value(holder, name, b"x" * 100)
        if passed is None:
            db.store_user_value(user, key, b"x" * 100)
        else:
            with pytest.raises(QuotaExceededError, match=passed):
                db.store_user_value(user, key, b"x" * 100)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_every_engine_counts_a_values_stored_size_as_defined(open_db: OpenDb, signed: bool) -> None:
    """A value's stored size is its head and its body (records.stored_size), inline or in
    pieces, by each engine's own reading (Python, SQL) and by its counters (SQL, Lua)."""
    db = open_db(secret_key=KEY) if signed else open_db()
    engine = db._backend
    engine.chunk_size = 1024
    values: dict[str, Any] = {"small": [1, 2], "large": b"y" * 5000}
    # Then replaced: the counters take the old value's size off (Lua: stored_size(old)).
    for stored in (values, {"small": "a", "large": b"z" * 7000}):
        for key, value in stored.items():
            db.store_user_value("u", key, value)
        expected = {}
        for key in stored:
            raw = engine.read_raw("u", key)
            assert raw is not None
            head, pieces = raw
            expected[key] = stored_size(len(head), sum(map(len, pieces)))
            assert body_start(head) == len(head)
        assert db.inspect.key_sizes("u") == expected
        assert engine.counts("u") == {"u": (2, sum(expected.values()))}
        assert db.stats().bytes == sum(expected.values())
