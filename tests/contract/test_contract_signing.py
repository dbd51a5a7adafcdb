"""The contract: signed values round trip, and every forgery is refused unread, on every engine."""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

import pytest

from dash_database import DashDatabase
from dash_database.exceptions import DeserializationError
from dash_database.serialization import Codec
from dash_database.signing import FRAME, Signer

from helpers import (
    DATA,
    KEY,
    OLD_KEY,
    SERIALIZERS,
    Marker,
    OpenDb,
    read_with,
    value_for,
    write_with,
)


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
    head, pieces = engine.read_raw("u", "k")  # type: ignore[misc]
    stored = head + b"".join(pieces)
    refused = r"(altered|not in secret_key|does not read|damaged|unknown kind)"
    for position in (*range(1, len(head)), len(head) + 5, len(head) + FRAME, len(stored) - 1):
        altered = bytearray(stored)
        altered[position] ^= 0x01
        name = f"altered {position}"
        engine.write_raw("u", name, bytes(altered[: len(head)]), [bytes(altered[len(head) :])])
        with pytest.raises(DeserializationError, match=refused):
            db.get_user_value("u", name)


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
    read_with(db, Codec("pickle"), "u", "k")  # the control: without a key, it runs
    assert marker.exists()


def test_rotation_reads_old_keys_and_sign_values_moves_to_the_new_one(open_db: OpenDb) -> None:
    """Written with the old key; read with [new, old]; after sign_values, with new alone."""
    db = open_db(secret_key=[KEY, OLD_KEY])
    write_with(db, Codec("pickle", signer=Signer(OLD_KEY)), "u", "old", "from the old key")
    write_with(db, Codec("pickle"), "u", "unsigned", "from before keys")
    db.store_user_value("u", "new", "from the new key")
    assert db.get_user_value("u", "old") == "from the old key"
    new_alone = Codec("pickle", signer=Signer(KEY))
    with pytest.raises(DeserializationError, match="not in secret_key"):
        read_with(db, new_alone, "u", "old")
    report = db.sign_values()
    assert (report.signed, report.refused) == (1, 1)  # the old key's; the unsigned one refused
    assert [(user, key) for user, key, _ in report.refusals] == [("u", "unsigned")]
    assert db.sign_values().signed == 0  # nothing left to sign
    assert db.sign_values(trust_unsigned=True).signed == 1  # the explicit choice
    for key in ("old", "unsigned", "new"):
        assert read_with(db, new_alone, "u", key).startswith("from")


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


def test_values_signed_by_2_3_read_and_survive_a_rename(open_db: OpenDb, tmp_path: Path) -> None:
    """Records a 2.3 store signed read back on every engine; a rename signs them again."""
    shutil.copy(DATA / "store-2.3.0-signed.db", tmp_path / "old.db")
    shutil.copytree(DATA / "store-2.3.0-signed.db-values", tmp_path / "old.db-values")
    db = open_db(secret_key=KEY)
    with DashDatabase(tmp_path / "old.db", secret_key=KEY) as old:
        assert old.get_user_value("alice", "cart") == [1, 2]  # the 2.3 file itself reads
        for user, key in (("alice", "cart"), ("alice", "big"), ("bob", "cart")):
            db._backend.write_raw(user, key, *old._backend.read_raw(user, key))  # type: ignore[misc]
    assert db.get_user_value("alice", "big") == b"x" * 70_000
    assert db.rename_user("alice", "alice-2") == 2
    assert db.get_user_value("alice-2", "cart") == [1, 2]
    assert db.get_user_value("alice-2", "big") == b"x" * 70_000
    assert db.get_user_value("bob", "cart") == ["b"]
    # A 2.3 record moved by hand to another user is refused, as before.
    db._backend.write_raw("eve", "cart", *db._backend.read_raw("bob", "cart"))  # type: ignore[misc]
    with pytest.raises(DeserializationError, match="altered"):
        db.get_user_value("eve", "cart")


def test_rotation_signs_nothing_planted_and_runs_nothing(open_db: OpenDb, tmp_path: Path) -> None:
    """Unsigned pickles planted in a signed store are refused, listed and never unpickled."""
    db = open_db(secret_key=[KEY, OLD_KEY])
    write_with(db, Codec("pickle", signer=Signer(OLD_KEY)), "alice", "cart", ["apple"])
    marker = tmp_path / f"ran-{uuid.uuid4().hex}"
    write_with(db, Codec("pickle"), "bob", "role", "admin")
    write_with(db, Codec("pickle"), "bob", "payload", Marker(marker))
    report = db.sign_values()
    assert not marker.exists()
    assert (report.signed, report.refused) == (1, 2)
    assert sorted((user, key) for user, key, _ in report.refusals) == [
        ("bob", "payload"),
        ("bob", "role"),
    ]
    assert all("is not signed" in why for _, _, why in report.refusals)
    new_alone = Codec("pickle", signer=Signer(KEY))  # the old key retired
    assert read_with(db, new_alone, "alice", "cart") == ["apple"]
    with pytest.raises(DeserializationError, match="is not signed"):
        read_with(db, new_alone, "bob", "role")
    assert not marker.exists()


def test_one_odd_value_never_aborts_signing(open_db: OpenDb) -> None:
    """A damaged record, or one of a newer version, is refused and listed; the rest are signed."""
    db = open_db(secret_key=[KEY, OLD_KEY])
    write_with(db, Codec("pickle", signer=Signer(OLD_KEY)), "u", "a", 1)
    write_with(db, Codec("pickle", signer=Signer(OLD_KEY)), "u", "c", 3)
    head, pieces = db._backend.read_raw("u", "a")  # type: ignore[misc]
    newer = head[:1] + b"\x09" + head[2:]  # a header version this release does not read
    db._backend.write_raw("u", "b", newer, list(pieces))
    report = db.sign_values()
    assert (report.signed, report.refused) == (2, 1)
    assert report.refusals[0][:2] == ("u", "b")
    assert "newer version" in report.refusals[0][2]
