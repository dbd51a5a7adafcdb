"""The contract: what a store holds, or is given, never turns against its host, on every engine."""

from __future__ import annotations

import pytest

from dash_database import DashDatabase
from dash_database.exceptions import (
    DatabaseClosedError,
    ReentrantCallError,
)

from helpers import ReadsWhilePickling


def test_ids_past_the_int_to_str_limit_are_refused_by_name(db: DashDatabase) -> None:
    """An int id of 5,000 digits raises ValueError naming the argument; 4,000 digits round-trip."""
    with pytest.raises(ValueError, match="user_id is an int of more than"):
        db.store_user_value(10**5000, "k", 1)
    with pytest.raises(ValueError, match="key_name is an int of more than"):
        db.get_user_value("u", 10**5000)
    db.store_user_value(10**3999, 10**3999, "big ints")
    assert db.get_user_value(10**3999, 10**3999) == "big ints"
    assert db.list_stored_user_keys(10**3999) == [10**3999]
    assert db.list_users() == [10**3999]


def test_purge_on_a_closed_store_without_expiry_says_closed(db: DashDatabase) -> None:
    """Every method checks the closed state first, before its arguments or settings."""
    db.close()
    with pytest.raises(DatabaseClosedError):
        db.purge_expired()
    with pytest.raises(DatabaseClosedError):
        db.store_user_value(True, "k", 1)


def test_a_value_whose_pickling_calls_the_database_behaves_the_same_everywhere(
    db: DashDatabase,
) -> None:
    """Stored on every engine alike; inside update_user_value it is refused with one message."""
    db.store_user_value("other", "k", 1)
    db.store_user_value("u", "k", ReadsWhilePickling(db))
    assert db.get_user_value("u", "k") == "saw 1"
    with pytest.raises(ReentrantCallError, match="from inside the func of update_user_value"):
        db.update_user_value("u", "k", lambda old: ReadsWhilePickling(db))
    assert db.get_user_value("u", "k") == "saw 1"
