"""The code-free serializer (``serializer="data"``) and compression, on every engine: values
round trip with their types, and crafted records never run code nor allocate what they claim."""

from __future__ import annotations

import datetime
import decimal
import json
import struct
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dash_database import DashDatabase, records
from dash_database.exceptions import DeserializationError, SerializationError
from dash_database.records import COMPRESSED, make_header

from helpers import KEY, Marker, OpenDb

TYPED: list[Any] = [
    b"\x00raw bytes\xff",
    {"a": [1, 2.5, None, True, "x"]},
    (1, "two", (3.0,)),
    {1, 2, 3},
    frozenset({"a"}),
    bytearray(b"mutable"),
    {"inner": b"bytes in a dict"},
    datetime.datetime(2026, 12, 6, 3, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=1))),
    datetime.date(2026, 12, 6),
    datetime.time(3, 30, 15, 12),
    datetime.timedelta(days=2, seconds=5, microseconds=7),
    decimal.Decimal("12.345"),
    uuid.UUID(int=42),
    float("nan"),
    {1: "int key", (2, 3): "tuple key"},
    {"$t": "a user's own key that looks like a tag"},
]


def same(left: Any, right: Any) -> bool:
    """Equal, with NaN equal to itself and types kept."""
    if isinstance(left, float) and left != left:
        return isinstance(right, float) and right != right
    return type(left) is type(right) and left == right


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("compress", [None, "zstd"])
def test_typed_values_round_trip_with_their_types(
    open_db: OpenDb, compress: str | None, signed: bool
) -> None:
    """bytes, JSON, and what JSON cannot hold exactly come back as they were, types kept,
    signed or not."""
    db = open_db(serializer="data", compress=compress, secret_key=KEY if signed else None)
    for index, value in enumerate(TYPED):
        db.store_user_value("u", index, value)
    for index, value in enumerate(TYPED):
        assert same(db.get_user_value("u", index), value), value


@pytest.mark.parametrize(
    "dtype", ["int8", "uint16", ">i4", "<i8", "float16", ">f4", "float64", "complex128", "bool"]
)
def test_arrays_keep_dtype_shape_and_byte_order(open_db: OpenDb, dtype: str) -> None:
    """Arrays of every numeric dtype come back equal, in shape, order and byte order."""
    db = open_db(serializer="data")
    array = np.arange(24).astype(dtype).reshape(2, 3, 4)
    for name, value in (("c", array), ("f", np.asfortranarray(array)), ("empty", array[:0])):
        db.store_user_value("u", name, value)
        back = db.get_user_value("u", name)
        assert back.dtype == value.dtype
        assert back.shape == value.shape
        assert back.flags.f_contiguous == value.flags.f_contiguous
        np.testing.assert_array_equal(back, value)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    """DataFrames of mixed dtypes with gaps, time zones, categoricals, and either index."""
    rows = draw(st.integers(0, 6))
    floats = st.one_of(st.floats(allow_nan=True, allow_infinity=False, width=64), st.none())
    stamps = st.one_of(st.none(), st.integers(0, 2**40))
    frame = pd.DataFrame(
        {
            "ints": draw(st.lists(st.integers(-(2**40), 2**40), min_size=rows, max_size=rows)),
            "floats": pd.array(draw(st.lists(floats, min_size=rows, max_size=rows)), "float64"),
            "text": draw(st.lists(st.text(max_size=5), min_size=rows, max_size=rows)),
            "when": pd.to_datetime(
                draw(st.lists(stamps, min_size=rows, max_size=rows)), unit="s", utc=True
            ).tz_convert("Europe/Paris"),
            "kind": pd.Categorical(
                draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=rows, max_size=rows))
            ),
        }
    )
    if draw(st.booleans()):
        frame.index = pd.MultiIndex.from_arrays(
            [list(range(rows)), [f"r{n}" for n in range(rows)]], names=["n", "name"]
        )
    return frame


def test_dataframes_round_trip_on_every_engine(open_db: OpenDb) -> None:
    """Any frame of the strategy comes back equal: dtypes, NaN and NaT, zones, categories."""
    db = open_db(serializer="data", secret_key=KEY)
    db._backend.chunk_size = 4096  # larger frames go in pieces

    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(frame=frames())
    def round_trip(frame: pd.DataFrame) -> None:
        db.store_user_value("u", "frame", frame)
        pd.testing.assert_frame_equal(db.get_user_value("u", "frame"), frame)

    round_trip()
    series = pd.Series([1.5, None], name="price", index=["a", "b"])
    for value in (series, series.rename(None)):
        db.store_user_value("u", "series", value)
        pd.testing.assert_series_equal(db.get_user_value("u", "series"), value)


def test_what_no_format_holds_is_refused_naming_it(open_db: OpenDb) -> None:
    """An object, or an array of objects, is refused at store time with a TypeError."""
    db = open_db(serializer="data")
    with pytest.raises(SerializationError, match=r"value\[1\] is a pathlib.PosixPath"):
        db.store_user_value("u", "k", [1, Path("/")])
    with pytest.raises(TypeError, match="holds Python objects"):
        db.store_user_value("u", "k", np.array([object()]))
    assert db.list_stored_user_keys("u") == []


def test_a_store_switched_to_and_from_zstd_reads_every_value(tmp_path: Path) -> None:
    """Compression is recorded per value: a store read with either setting reads both."""
    path = tmp_path / "store.sqlite3"
    frame = pd.DataFrame({"city": ["Paris", "Lyon"] * 5000, "price": [1.25, 3.5] * 5000})
    with DashDatabase(path, serializer="data") as db:
        db.store_user_value("u", "plain", frame)
    with DashDatabase(path, serializer="data", compress="zstd") as db:
        db.store_user_value("u", "packed", frame)
        pd.testing.assert_frame_equal(db.get_user_value("u", "plain"), frame)
        packed, plain = db.inspect.key_sizes("u").values()
        assert packed is not None
        assert plain is not None
        assert packed * 4 < plain  # several-fold on such a table
    with DashDatabase(path, serializer="data") as db:
        pd.testing.assert_frame_equal(db.get_user_value("u", "packed"), frame)


def _crafted(db: DashDatabase, key: str, kind: bytes, body: bytes, compressed: int = 0) -> None:
    """Store a record of ``kind`` whose body is ``body``, as someone without the code would."""
    flags, fields = (
        (0, b"") if not compressed else (COMPRESSED, b"\x01" + compressed.to_bytes(8, "big"))
    )
    db._backend.write_raw("u", key, b"H" + make_header(flags, kind, fields), [body])


def test_a_pickle_smuggled_into_any_format_never_runs(open_db: OpenDb, tmp_path: Path) -> None:
    """A pickle written as Arrow, .npy, JSON, typed JSON, bytes or compressed is never loaded."""
    import pickle

    db = open_db(serializer="data")
    marker = tmp_path / "ran"
    payload = pickle.dumps(Marker(marker))
    squeezed = zstandard.ZstdCompressor().compress(payload)
    for kind in (b"A", b"N", b"J", b"T"):
        _crafted(db, f"plain {kind!r}", kind, payload)
        _crafted(db, f"zstd {kind!r}", kind, squeezed, compressed=len(payload))
    for key in db.list_stored_user_keys("u"):
        with pytest.raises(DeserializationError):
            db.get_user_value("u", key)
    _crafted(db, "bytes", b"B", payload)
    assert db.get_user_value("u", "bytes") == payload  # bytes, never unpickled
    _crafted(db, "pickle", b"P", payload)
    with pytest.raises(DeserializationError, match="stored with serializer='pickle'"):
        db.get_user_value("u", "pickle")
    assert not marker.exists()


def _peak_while(read: Any) -> int:
    """The most bytes allocated while ``read()`` fails."""
    tracemalloc.start()
    try:
        with pytest.raises(DeserializationError):
            read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_crafted_length_is_refused_without_a_large_allocation(open_db: OpenDb) -> None:
    """An array, a table, a JSON value and a zstd frame that claim gigabytes fail small."""
    db = open_db(serializer="data")
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + header.ljust(117).encode() + b"\n"
    _crafted(db, "array", b"N", npy + b"\x00" * 64)
    # An Arrow IPC message whose metadata claims 2 GB.
    _crafted(db, "table", b"A", b"\xff\xff\xff\xff" + struct.pack("<i", 2**31 - 1) + b"\x00" * 64)
    bomb = zstandard.ZstdCompressor(write_content_size=True).compress(b"\x00" * 2_000_000)
    _crafted(db, "bomb", b"J", bomb, compressed=10)  # expands past the recorded length
    frame = bytearray(zstandard.ZstdCompressor(write_content_size=True).compress(b"[1]"))
    _crafted(db, "claims", b"J", bytes(frame[:5]) + b"\xff" * 8 + bytes(frame[13:]), 3)
    for key in ("array", "table", "bomb", "claims"):
        assert _peak_while(lambda key=key: db.get_user_value("u", key)) < 20_000_000, key


def test_the_cli_shows_and_exports_code_free_values(tmp_path: Path) -> None:
    """show and export read data values through the codec: a frame is named and exported."""
    from dash_database.cli import main

    path = str(tmp_path / "store.sqlite3")
    with DashDatabase(path, serializer="data", compress="zstd") as db:
        db.store_user_value("alice", "frame", pd.DataFrame({"a": [1, 2]}))
        db.store_user_value("alice", "when", datetime.date(2026, 12, 6))
    out = tmp_path / "out.json"
    with out.open("w") as stream:
        assert main([path, "export", "alice", "--json"], out=stream) == 0
    exported = json.loads(out.read_text())
    values = {v["key"]: v for v in exported["users"][0]["values"]}
    assert values["frame"]["value"]["$type"] == "pandas.DataFrame"
    assert values["when"]["value"] == {"$type": "date", "value": "2026-12-06"}


class Model:
    """An object of the app's own: no code-free format holds it."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model)


def test_a_pickle_store_converts_to_data_refusing_what_it_cannot_hold(open_db: OpenDb) -> None:
    """Pickled values become code-free ones; an app's object is refused, listed and kept."""
    db = open_db()
    frame = pd.DataFrame({"a": [1, 2]})
    db.store_user_value("u", "frame", frame)
    db.store_user_value("u", "when", datetime.date(2026, 12, 6))
    db.store_user_value("u", "model", Model())
    with pytest.raises(ValueError, match="trust_pickles=True"):
        db.convert_to_data()
    dry = db.convert_to_data(trust_pickles=True, dry_run=True)
    assert (dry.converted, dry.unchanged, dry.refused) == (2, 0, 1)
    head = db.inspect.head("u", "frame", 0)
    assert head is not None
    assert records.kind(head) == b"P"  # the dry run wrote nothing
    report = db.convert_to_data(trust_pickles=True)
    assert (report.converted, report.unchanged, report.refused) == (2, 0, 1)
    assert report.refusals[0][:2] == ("u", "model")
    assert "serializer='data' stores" in report.refusals[0][2]
    again = db.convert_to_data(trust_pickles=True)
    assert (again.converted, again.unchanged, again.refused) == (0, 2, 1)
    assert db.get_user_value("u", "model") == Model()  # left as it was, still a pickle
    with pytest.raises(DeserializationError, match="serializer='data'"):
        db.get_user_value("u", "frame")  # now code-free: open the store with "data"


def test_the_cli_converts_a_signed_store_only_with_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """convert-to-data needs --trust-pickles; --dry-run writes nothing; then values read as data,
    still signed, and an unsigned pickle planted in the store is refused, never unpickled."""
    from dash_database.cli import main
    from dash_database.serialization import Codec

    from helpers import write_with

    path = str(tmp_path / "store.sqlite3")
    marker = tmp_path / "ran"
    with DashDatabase(path, secret_key=KEY) as db:
        db.store_user_value("alice", "prices", np.array([1.5, 2.25]))
        write_with(db, Codec("pickle"), "mallory", "payload", Marker(marker))
    monkeypatch.setenv("DASH_DATABASE_SECRET_KEY", KEY.decode())
    assert main([path, "convert-to-data"]) == 2
    assert "--trust-pickles" in capsys.readouterr().err
    assert main([path, "convert-to-data", "--trust-pickles", "--dry-run"]) == 0
    assert "would convert 1 values" in capsys.readouterr().out
    assert main([path, "convert-to-data", "--trust-pickles"]) == 0
    out = capsys.readouterr().out
    assert "converted 1 values" in out
    assert "user 'mallory' key 'payload': " in out
    assert not marker.exists()
    with DashDatabase(path, serializer="data", secret_key=KEY) as db:
        np.testing.assert_array_equal(db.get_user_value("alice", "prices"), [1.5, 2.25])


def test_copy_carries_code_free_and_compressed_values(open_db: OpenDb, tmp_path: Path) -> None:
    """copy_to moves data and compressed records as stored, and they read the same there."""
    source = open_db(serializer="data", compress="zstd", secret_key=KEY)
    source._backend.chunk_size = 4096
    frame = pd.DataFrame({"a": range(2000), "b": ["x"] * 2000})
    source.store_user_value("u", "frame", frame)
    source.store_user_value("u", "when", (datetime.date(2026, 12, 6),))
    with DashDatabase(tmp_path / "copy.sqlite3", serializer="data", secret_key=KEY) as target:
        assert source.copy_to(target).copied == 2
        pd.testing.assert_frame_equal(target.get_user_value("u", "frame"), frame)
        assert target.get_user_value("u", "when") == (datetime.date(2026, 12, 6),)
