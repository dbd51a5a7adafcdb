"""The contract: damage inside an unsigned value is reported, never read as data, anywhere."""

from __future__ import annotations

import pytest

from dash_database import records
from dash_database.exceptions import DeserializationError
from dash_database.serialization import SERIALIZERS, Codec

from helpers import OpenDb, value_for, write_with

DAMAGED = r"key_name='(small|big)' of user_id='u' does not match its checksum: it is damaged"


@pytest.mark.parametrize("compress", [None, "zstd"])
@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_a_flipped_byte_in_an_unsigned_value_is_reported_naming_its_key(
    open_db: OpenDb, serializer: str, compress: str | None
) -> None:
    """A byte flipped anywhere in the body of a small or a chunked value raises
    DeserializationError naming the user and key; stats(check=True) counts it, and check()
    reports it as damaged."""
    db = open_db(serializer=serializer, compress=compress)
    db._backend.chunk_size = 1024
    engine = db._backend
    for key in ("small", "big"):
        db.store_user_value("u", key, value_for(serializer, big=key == "big"))
        head, pieces = engine.read_raw("u", key)  # type: ignore[misc]
        assert records.flags(head) & records.CHECKSUMMED
        body = b"".join(pieces)
        for position in (0, len(body) // 2, len(body) - 1):
            damaged = bytearray(body)
            damaged[position] ^= 0x10
            engine.write_raw("u", key, head, [bytes(damaged)])
            with pytest.raises(DeserializationError, match=DAMAGED):
                db.get_user_value("u", key)
        assert db.inspect.stats(check=True).missing == 1
        assert db.inspect.user_stats("u", check=True).missing == 1
        report = db.inspect.check()
        assert [(p.kind, p.key_name) for p in report.problems if p.user_id == "u"][-1:] == [
            ("damaged", key)
        ]
        engine.write_raw("u", key, head, [body])
        assert db.get_user_value("u", key) == value_for(serializer, big=key == "big")
    assert db.inspect.check().healthy


@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_values_written_without_a_checksum_keep_the_2x_layout_and_read_everywhere(
    open_db: OpenDb, serializer: str
) -> None:
    """checksum=False writes what 2.3 reads (no header); each setting reads the other's values."""
    db = open_db(serializer=serializer, checksum=False)
    value = value_for(serializer)
    db.store_user_value("u", "plain", value)
    head, _ = db._backend.read_raw("u", "plain")  # type: ignore[misc]
    assert head == serializer[:1].upper().encode()
    write_with(db, Codec(serializer), "u", "checked", value)
    assert db.get_user_value("u", "checked") == value
    assert db.get_user_value("u", "plain") == value
