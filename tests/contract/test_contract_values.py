"""The contract: storing, reading, listing, updating and deleting values, on every engine."""

from __future__ import annotations

import collections.abc
from typing import Any

import pytest

from dash_database import DashDatabase, UserValues
from dash_database.exceptions import DashDatabaseError, DatabaseClosedError, KeyNotFoundError


def test_seed_api_example_from_1_0(db: DashDatabase) -> None:
    """The 1.0 README example gives the same results."""
    db.store_user_value(user_id=123, key_name="account_id", value=46887)
    db.store_user_value(123, "favorite_animal", "monkey")
    db.store_user_value(456, "favorite_color", "green")
    assert db.list_stored_user_keys(123) == ["account_id", "favorite_animal"]
    assert db.get_user_value(user_id=123, key_name="account_id") == 46887
    db.delete_user_value(user_id=123, key_name="favorite_animal", if_not_exists="ignore")
    db.delete_all_user_values(456)
    assert db.list_stored_user_keys(123) == ["account_id"]
    assert db.list_stored_user_keys(456) == []


def test_store_replaces_and_get_returns_default(db: DashDatabase) -> None:
    """A second store replaces the value; a missing key gives ``default``."""
    db.store_user_value(1, "k", "old")
    db.store_user_value(1, "k", "new")
    assert db.get_user_value(1, "k") == "new"
    assert db.get_user_value(1, "missing") is None
    assert db.get_user_value(1, "missing", default=7) == 7
    db.store_user_value(1, "none", None)
    assert db.get_user_value(1, "none", default=7) is None


def test_any_picklable_value_round_trips(db: DashDatabase) -> None:
    """Pickle values come back equal, types included."""
    values: list[Any] = [
        0,
        -1,
        2**100,
        1.5,
        "",
        "ü\x00",
        b"\x00\xff",
        (1, 2),
        {1: "a", (2,): {3}},
        [None, True],
        frozenset({1}),
        complex(1, 2),
        bytearray(b"ab"),
    ]
    for index, value in enumerate(values):
        db.store_user_value("u", index, value)
    assert [db.get_user_value("u", index) for index in range(len(values))] == values
    assert type(db.get_user_value("u", values.index((1, 2)))) is tuple


def test_keys_are_listed_sorted_with_their_types(db: DashDatabase) -> None:
    """Listing returns ints numerically, then strs by code point, with original types."""
    for key in ["b", 10, "a", 9, "10", -1, ""]:
        db.store_user_value("u", key, key)  # type: ignore[arg-type]
    assert db.list_stored_user_keys("u") == [-1, 9, 10, "", "10", "a", "b"]


def test_list_users(db: DashDatabase) -> None:
    """``list_users`` returns each id holding a value once, and drops emptied users."""
    assert db.list_users() == []
    db.store_user_value(2, "a", 1)
    db.store_user_value(2, "b", 1)
    db.store_user_value("2", "a", 1)
    db.store_user_value("x", "a", 1)
    assert db.list_users() == [2, "2", "x"]
    db.delete_all_user_values("x")
    db.delete_user_value("2", "a")
    assert db.list_users() == [2]


def test_delete_user_value_if_not_exists(db: DashDatabase) -> None:
    """``ignore`` is silent, ``raise`` raises a KeyError, anything else a ValueError."""
    db.delete_user_value(1, "nothing")
    with pytest.raises(KeyError, match="key_name='nothing'") as info:
        db.delete_user_value(1, "nothing", if_not_exists="raise")
    assert isinstance(info.value, KeyNotFoundError)
    with pytest.raises(ValueError, match="if_not_exists"):
        db.delete_user_value(1, "nothing", if_not_exists="skip")
    db.store_user_value(1, "k", 1)
    db.delete_user_value(1, "k", if_not_exists="raise")
    assert db.get_user_value(1, "k") is None


def test_update_user_value(db: DashDatabase) -> None:
    """``update_user_value`` stores and returns ``func(old or default)``."""
    assert db.update_user_value(1, "n", lambda n: n + 1, default=0) == 1
    assert db.update_user_value(1, "n", lambda n: n * 10) == 10
    assert db.get_user_value(1, "n") == 10
    with pytest.raises(TypeError, match="func must be callable"):
        db.update_user_value(1, "n", 5)  # type: ignore[arg-type]


def test_update_that_raises_changes_nothing(db: DashDatabase) -> None:
    """An exception in ``func`` reaches the caller and leaves the old value."""
    db.store_user_value(1, "n", 1)

    def boom(_: Any) -> Any:
        raise ZeroDivisionError("boom")

    with pytest.raises(ZeroDivisionError, match="boom"):
        db.update_user_value(1, "n", boom)
    with pytest.raises(TypeError, match="cannot be stored"):
        db.update_user_value(1, "n", lambda _: lambda: None)
    assert db.get_user_value(1, "n") == 1
    assert db.update_user_value(1, "n", lambda n: n + 1) == 2


def test_update_func_cannot_call_the_database(db: DashDatabase) -> None:
    """Calling the database from inside ``func`` raises instead of deadlocking."""
    db.store_user_value(1, "n", 1)
    with pytest.raises(RuntimeError, match="from inside the func of update_user_value"):
        db.update_user_value(1, "n", lambda n: db.store_user_value(1, "m", n))
    assert db.get_user_value(1, "n") == 1
    assert db.get_user_value(1, "m") is None


@pytest.mark.parametrize("bad", [True, False, 1.5, None, b"x", ("a",), ["a"]])
def test_ids_and_keys_must_be_str_or_int(db: DashDatabase, bad: Any) -> None:
    """A bool, float, bytes, None or container raises TypeError naming the argument."""
    with pytest.raises(TypeError, match="user_id must be a str or an int"):
        db.store_user_value(bad, "k", 1)
    with pytest.raises(TypeError, match="key_name must be a str or an int"):
        db.store_user_value(1, bad, 1)
    with pytest.raises(TypeError, match="user_id"):
        db.list_stored_user_keys(bad)
    with pytest.raises(TypeError, match="user_id"):
        db.user(bad)
    assert db.list_users() == []


def test_user_view_is_a_mutable_mapping(db: DashDatabase) -> None:
    """``db.user(id)`` supports [], get, in, len, iteration, del and clear()."""
    view = db.user("alice")
    assert isinstance(view, collections.abc.MutableMapping)
    assert isinstance(view, UserValues)
    view["a"] = 1
    view[2] = "two"
    assert view["a"] == 1
    assert view.get(2) == "two"
    assert view.get("zz", 0) == 0
    assert "a" in view
    assert "b" not in view
    assert len(view) == 2
    assert list(view) == [2, "a"]
    assert dict(view.items()) == {2: "two", "a": 1}
    del view["a"]
    with pytest.raises(KeyError):
        del view["a"]
    with pytest.raises(KeyError, match="no value named 'a'"):
        view["a"]
    db.store_user_value("bob", "x", 1)
    view.clear()
    assert len(view) == 0
    assert db.get_user_value("bob", "x") == 1
    assert "alice" in repr(view)


def test_close_is_idempotent_and_every_call_after_it_raises(db: DashDatabase) -> None:
    """After close, ``closed`` is true and every method raises a ValueError saying so."""
    view = db.user(1)
    assert not db.closed
    db.close()
    db.close()
    assert db.closed
    calls = [
        lambda: db.store_user_value(1, "k", 1),
        lambda: db.get_user_value(1, "k"),
        lambda: db.list_stored_user_keys(1),
        lambda: db.delete_user_value(1, "k"),
        lambda: db.delete_all_user_values(1),
        lambda: db.update_user_value(1, "k", lambda v: v),
        lambda: db.list_users(),
        lambda: view["k"],
        lambda: len(view),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="is closed") as info:
            call()
        assert isinstance(info.value, DatabaseClosedError)
        assert isinstance(info.value, DashDatabaseError)
    with pytest.raises(DatabaseClosedError), db:
        pass
