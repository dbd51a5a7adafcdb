"""The contract: signed values round trip, and every forgery is refused unread, on every engine."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest

from dash_database.exceptions import DeserializationError
from dash_database.serialization import Codec
from dash_database.signing import FRAME, Signer

from helpers import KEY, OLD_KEY, SERIALIZERS, Marker, OpenDb, value_for, write_with


@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
def test_signed_values_round_trip_and_refuse_every_forgery(
    open_db: OpenDb, serializer: str, big: bool
) -> None:
    """Signed values read back; unsigned, wrong-key and moved ones raise, naming the case."""
    db = open_db(serializer=serializer, secret_key=KEY)
    db._backend.chunk_size = 64 * 1024
    value = value_for(serializer, big)
    db.store_user_value("alice", "k", value)
    assert db.get_user_value("alice", "k") == value
    db.update_user_value("alice", "n", lambda old: old + 1, default=0)
    assert db.get_user_value("alice", "n") == 1
    write_with(db, Codec(serializer), "alice", "unsigned", value)
    with pytest.raises(DeserializationError, match="is not signed"):
        db.get_user_value("alice", "unsigned")
    write_with(db, Codec(serializer, signer=Signer(OLD_KEY)), "alice", "other key", value)
    with pytest.raises(DeserializationError, match="not in secret_key"):
        db.get_user_value("alice", "other key")
    # A signed record copied, as stored, onto another user's key, and another key name.
    engine = db._backend
    for user, key in (("bob", "k"), ("alice", "k2")):
        raw = engine.read_raw("alice", "k")
        engine.write_raw(user, key, *raw)  # type: ignore[misc]
        with pytest.raises(DeserializationError, match="altered, or moved"):
            db.get_user_value(user, key)
    assert db.get_user_value("alice", "k") == value  # the original still reads


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_a_flipped_byte_anywhere_is_refused(open_db: OpenDb, serializer: str) -> None:
    """A byte flipped in the header, a frame's data or a MAC is refused on every engine."""
    db = open_db(serializer=serializer, secret_key=KEY)
    db._backend.chunk_size = 64 * 1024
    engine = db._backend
    db.store_user_value("u", "k", value_for(serializer, big=True))
    tag, pieces = engine.read_raw("u", "k")  # type: ignore[misc]
    stored = b"".join(pieces)
    for position in (5, 30, FRAME, len(stored) - 1):
        altered = bytearray(stored)
        altered[position] ^= 0x01
        engine.write_raw("u", f"altered {position}", tag, [bytes(altered)])
        with pytest.raises(DeserializationError, match=r"(altered|not in secret_key)"):
            db.get_user_value("u", f"altered {position}")


def test_no_pickle_runs_before_the_signature_is_checked(open_db: OpenDb, tmp_path: Path) -> None:
    """An unsigned pickle that would touch a marker file is refused; unsigned reading runs it."""
    db = open_db(secret_key=KEY)
    marker = tmp_path / f"ran-{uuid.uuid4().hex}"
    write_with(db, Codec("pickle"), "u", "k", Marker(marker))
    with pytest.raises(DeserializationError, match="is not signed"):
        db.get_user_value("u", "k")
    with pytest.raises(DeserializationError, match="is not signed"):
        db.update_user_value("u", "k", lambda old: old)
    assert not marker.exists()
    engine = db._backend
    engine.get("u", "k", Codec("pickle"))  # the control: without a key, it runs
    assert marker.exists()


def test_rotation_reads_old_keys_and_sign_values_moves_to_the_new_one(open_db: OpenDb) -> None:
    """Written with the old key; read with [new, old]; after sign_values, with new alone."""
    db = open_db(secret_key=[KEY, OLD_KEY])
    engine = db._backend
    write_with(db, Codec("pickle", signer=Signer(OLD_KEY)), "u", "old", "from the old key")
    write_with(db, Codec("pickle"), "u", "unsigned", "from before keys")
    db.store_user_value("u", "new", "from the new key")
    assert db.get_user_value("u", "old") == "from the old key"
    new_alone = Codec("pickle", signer=Signer(KEY))
    with pytest.raises(DeserializationError, match="not in secret_key"):
        engine.get("u", "old", new_alone)
    assert db.sign_values().signed == 2  # the old-key one and the unsigned one
    assert db.sign_values().signed == 0  # nothing left to sign
    for key in ("old", "unsigned", "new"):
        assert engine.get("u", key, new_alone).startswith("from")


def test_sign_values_refuses_altered_values_and_needs_a_key(
    open_db: OpenDb, caplog: pytest.LogCaptureFixture
) -> None:
    """An altered value is left alone and logged; a store without a key cannot sign."""
    db = open_db(secret_key=KEY)
    write_with(db, Codec("pickle", signer=Signer(b"z" * 32)), "u", "stranger", 1)
    with caplog.at_level(logging.WARNING, "dash_database"):
        report = db.sign_values()
    assert (report.signed, report.refused) == (0, 1)
    assert "not in secret_key" in caplog.text
    with pytest.raises(ValueError, match="secret_key"):
        open_db().sign_values()
