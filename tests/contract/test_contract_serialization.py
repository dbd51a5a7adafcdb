"""The contract: both serializers, values in chunks, failed serialization, on every engine."""

from __future__ import annotations

from typing import Any

import pytest

from dash_database import DashDatabase
from dash_database.exceptions import SerializationError

from helpers import FailsWhilePickling, OpenDb


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -5, 1.25, "", "ü\x00", [1, [2, {"a": None}]], {"k": {"n": [1.5, "x"]}}],
)
def test_json_values_round_trip(open_db: OpenDb, value: Any) -> None:
    """Every JSON value comes back equal with ``serializer='json'``."""
    db = open_db(serializer="json")
    db.store_user_value(1, "v", value)
    assert db.get_user_value(1, "v") == value


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ((1, 2), "value is a tuple"),
        ({1: "a"}, "has the key 1"),
        ({"a": [1, {2}]}, r"value\['a'\]\[1\] is a set"),
        (b"bytes", "value is a bytes"),
        (float("nan"), "JSON cannot represent"),
        (object(), "value is a object"),
    ],
)
def test_json_refuses_other_values_and_stores_nothing(
    open_db: OpenDb, value: Any, path: str
) -> None:
    """A non-JSON value raises TypeError naming where it is, and the old value stays."""
    db = open_db(serializer="json")
    db.store_user_value(1, "v", "old")
    with pytest.raises(TypeError, match=path) as info:
        db.store_user_value(1, "v", value)
    assert isinstance(info.value, SerializationError)
    assert db.get_user_value(1, "v") == "old"
    assert db.list_stored_user_keys(1) == ["v"]


def test_unpicklable_value_raises_and_stores_nothing(db: DashDatabase) -> None:
    """An unpicklable value raises TypeError in the caller; the old value stays."""
    db.store_user_value(1, "v", "old")
    with pytest.raises(TypeError, match="cannot be stored with serializer='pickle'"):
        db.store_user_value(1, "v", lambda: None)
    assert db.get_user_value(1, "v") == "old"
    db.store_user_value(1, "w", "next call works")
    assert db.get_user_value(1, "w") == "next call works"


@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_values_larger_than_a_chunk_round_trip(open_db: OpenDb, serializer: str) -> None:
    """A value spanning many chunks is stored, read, updated and deleted whole."""
    db = open_db(serializer=serializer)
    db._backend.chunk_size = 64
    value = ["é" * 10 + str(i) for i in range(300)]
    db.store_user_value(1, "big", value)
    db.store_user_value(1, "small", "s")
    assert db.get_user_value(1, "big") == value
    assert db.update_user_value(1, "big", lambda v: [*v, "end"]) == [*value, "end"]
    assert db.get_user_value(1, "big") == [*value, "end"]
    db.store_user_value(1, "big", "now small")
    assert db.get_user_value(1, "big") == "now small"
    db.store_user_value(1, "big", value)
    db.delete_user_value(1, "big", if_not_exists="raise")
    assert db.get_user_value(1, "big") is None
    db.store_user_value(1, "big", value)
    db.delete_all_user_values(1)
    assert db.list_stored_user_keys(1) == []


def test_failure_after_chunks_were_written_leaves_the_old_value(db: DashDatabase) -> None:
    """Pickling that fails mid-stream rolls back the chunks already written."""
    db._backend.chunk_size = 256
    db.store_user_value(1, "v", ["old"] * 200)
    with pytest.raises(TypeError, match="cannot be stored"):
        db.store_user_value(1, "v", FailsWhilePickling())
    assert db.get_user_value(1, "v") == ["old"] * 200
    db.store_user_value(2, "after", 1)
    assert db.get_user_value(2, "after") == 1


def test_numpy_and_pandas_values_round_trip(db: DashDatabase) -> None:
    """A DataFrame larger than a chunk round-trips equal."""
    pd = pytest.importorskip("pandas")
    np = pytest.importorskip("numpy")
    db._backend.chunk_size = 4096
    frame = pd.DataFrame({"a": np.arange(10_000), "b": np.linspace(0, 1, 10_000), "c": "x"})
    db.store_user_value("u", "df", frame)
    pd.testing.assert_frame_equal(db.get_user_value("u", "df"), frame)
