"""Serializers: JSON stays JSON, pickle takes anything picklable, large values stream in chunks."""

from __future__ import annotations

import io
import pickle
import sqlite3
from typing import Any

import pytest

from dash_database import DashDatabase
from dash_database.exceptions import DeserializationError


def test_other_serializer_gives_a_clear_error(tmp_path: Any) -> None:
    """Reading a value written with the other serializer says which one to use."""
    path = tmp_path / "mixed.sqlite3"
    with DashDatabase(path, serializer="pickle") as db:
        db.store_user_value(1, "p", {"a": 1})
    with DashDatabase(path, serializer="json") as db:
        with pytest.raises(DeserializationError, match="open it with serializer='pickle'"):
            db.get_user_value(1, "p")
        db.store_user_value(1, "j", [1])
    with DashDatabase(path) as db, pytest.raises(ValueError, match="serializer='json'"):
        db.get_user_value(1, "j")


def test_damaged_record_gives_a_clear_error(file_db: DashDatabase) -> None:
    """A record that cannot be unpickled raises DeserializationError, a ValueError."""
    db = file_db
    db.store_user_value(1, "v", 1)
    with sqlite3.connect(db._backend.location) as conn:
        conn.execute(
            "UPDATE dash_database SET value = ? WHERE key = ?",
            (b"P" + pickle.dumps(1)[:-3], '[1,"v"]'),
        )
    with pytest.raises(ValueError, match="cannot be read back"):
        db.get_user_value(1, "v")


@pytest.mark.parametrize("size", [-1, 1, 7, 65_536, 5_000_000])
def test_a_compressed_stream_reads_whole_in_pieces_of_any_size(size: int) -> None:
    """Decompressed gives back every byte whatever the read size, and lines for old pickles."""
    import zstandard

    from dash_database.compression import Decompressed

    data = pickle.dumps([*range(200_000), "a\nb"], protocol=0)
    fields = b"\x01" + len(data).to_bytes(8, "big")
    packed = zstandard.ZstdCompressor().compress(data)
    reader = Decompressed(io.BytesIO(packed), fields)
    pieces = []
    while piece := reader.read(size):
        pieces.append(piece)
        if size < 0:
            break
    assert b"".join(pieces) == data
    assert pickle.load(Decompressed(io.BytesIO(packed), fields)) == [*range(200_000), "a\nb"]
