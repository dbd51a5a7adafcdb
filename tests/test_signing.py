"""Signed values: unsigned, forged, wrong-key, altered and moved records are refused unread."""

from __future__ import annotations

import logging
import pathlib
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from conftest import OpenDb
from dash_database import DashDatabase
from dash_database.cli import main
from dash_database.exceptions import DeserializationError
from dash_database.serialization import Codec
from dash_database.signing import FRAME, HEADER_SIZE, MAC_SIZE, Signer

KEY = b"k" * 32
OLD_KEY = b"o" * 32
SERIALIZERS = ["pickle", "json"]


class Marker:
    """A pickle that touches a file when it is unpickled: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return pathlib.Path.touch, (self.path,)


def write_with(db: DashDatabase, codec: Codec, user: Any, key: Any, value: Any) -> None:
    """Store ``value`` as a writer using ``codec`` would (no key, another key...)."""
    engine = db._backend  # type: ignore[attr-defined]
    own, engine.codec = engine.codec, codec
    try:
        engine.set(user, key, value)
    finally:
        engine.codec = own


def value_for(serializer: str, big: bool = False) -> Any:
    """A value the serializer stores, spanning several chunks (and frames) if ``big``."""
    size = 3 * FRAME + 10 if big else 10
    return {"text": "x" * size} if serializer == "json" else b"x" * size


@pytest.mark.parametrize("serializer", SERIALIZERS)
@pytest.mark.parametrize("big", [False, True], ids=["small", "big"])
def test_signed_values_round_trip_and_refuse_every_forgery(
    open_db: OpenDb, serializer: str, big: bool
) -> None:
    """Signed values read back; unsigned, wrong-key and moved ones raise, naming the case."""
    db = open_db(serializer=serializer, secret_key=KEY)
    db._backend.chunk_size = 64 * 1024  # type: ignore[attr-defined]
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
    engine = db._backend  # type: ignore[attr-defined]
    for user, key in (("bob", "k"), ("alice", "k2")):
        raw = engine.read_raw("alice", "k")
        engine.write_raw(user, key, *raw)
        with pytest.raises(DeserializationError, match="altered, or moved"):
            db.get_user_value(user, key)
    assert db.get_user_value("alice", "k") == value  # the original still reads


@pytest.mark.parametrize("serializer", SERIALIZERS)
def test_a_flipped_byte_anywhere_is_refused(open_db: OpenDb, serializer: str) -> None:
    """A byte flipped in the header, a frame's data or a MAC is refused on every engine."""
    db = open_db(serializer=serializer, secret_key=KEY)
    db._backend.chunk_size = 64 * 1024  # type: ignore[attr-defined]
    engine = db._backend  # type: ignore[attr-defined]
    db.store_user_value("u", "k", value_for(serializer, big=True))
    tag, pieces = engine.read_raw("u", "k")
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
    engine = db._backend  # type: ignore[attr-defined]
    engine.get("u", "k", Codec("pickle"))  # the control: without a key, it runs
    assert marker.exists()


def test_a_side_file_altered_on_disk_is_refused(tmp_path: Path) -> None:
    """A byte flipped in a side file, or a frame spliced from another value, is refused."""
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path, secret_key=KEY) as db:
        db._backend.chunk_size = 1024  # type: ignore[attr-defined]
        db.store_user_value("u", "a", b"a" * (2 * FRAME + 5))
        (file_a,) = (tmp_path / "store.sqlite3-values").iterdir()
        db.store_user_value("u", "b", b"a" * (2 * FRAME + 5))
        (file_b,) = set((tmp_path / "store.sqlite3-values").iterdir()) - {file_a}
        spliced = bytearray(file_a.read_bytes())
        # Frame 1 of value b (the same data, another nonce) in place of value a's.
        second = slice(HEADER_SIZE + FRAME + MAC_SIZE, HEADER_SIZE + 2 * (FRAME + MAC_SIZE))
        spliced[second] = file_b.read_bytes()[second]
        file_a.write_bytes(bytes(spliced))
        with pytest.raises(DeserializationError, match="altered"):
            db.get_user_value("u", "a")
        flipped = bytearray(file_b.read_bytes())
        flipped[-100] ^= 0x01
        file_b.write_bytes(bytes(flipped))
        with pytest.raises(DeserializationError, match="altered"):
            db.get_user_value("u", "b")


def test_a_redis_chunk_altered_on_the_server_is_refused(redis_url: str) -> None:
    """A byte flipped in one Redis chunk of a signed value is refused."""
    prefix = f"test-{uuid.uuid4().hex}:"
    with DashDatabase(redis_url, prefix=prefix, secret_key=KEY) as db:
        db._backend.chunk_size = 64 * 1024  # type: ignore[attr-defined]
        db.store_user_value("u", "k", b"x" * 200_000)
        client = redis.Redis.from_url(redis_url)
        chunk = sorted(client.keys(f"{prefix}chunk:*"))[1]
        client.setrange(chunk, 10, b"\xff")
        with pytest.raises(DeserializationError, match="altered"):
            db.get_user_value("u", "k")


def test_rotation_reads_old_keys_and_sign_values_moves_to_the_new_one(open_db: OpenDb) -> None:
    """Written with the old key; read with [new, old]; after sign_values, with new alone."""
    db = open_db(secret_key=[KEY, OLD_KEY])
    engine = db._backend  # type: ignore[attr-defined]
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


def test_keys_are_checked_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A short key works with a warning that never shows it; bad keys name the argument."""
    with caplog.at_level(logging.WARNING, "dash_database"):
        DashDatabase(":memory:", secret_key="hunter2-short").close()
    assert "is 13 bytes long; use at least 32 random bytes" in caplog.text
    assert "hunter2" not in caplog.text
    with pytest.raises(TypeError, match="secret_key must be a str, bytes"):
        DashDatabase(":memory:", secret_key=[42])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="secret_key is an empty list"):
        DashDatabase(":memory:", secret_key=[])


def test_copy_checks_signatures_and_keeps_them(tmp_path: Path) -> None:
    """copy_to streams signed values checked, as stored; an altered one stops the copy."""
    with (
        DashDatabase(tmp_path / "a.sqlite3", secret_key=KEY) as source,
        DashDatabase(tmp_path / "b.sqlite3", secret_key=KEY) as target,
    ):
        source.store_user_value("u", "k", "signed")
        assert source.copy_to(target).copied == 1
        assert target.get_user_value("u", "k") == "signed"
        write_with(source, Codec("pickle"), "v", "k", "unsigned")
        with pytest.raises(DeserializationError, match="is not signed"):
            source.copy_to(target, users=["v"])
        assert target.list_users() == ["u"]


def test_the_cli_reads_the_key_from_the_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """show works with DASH_DATABASE_SECRET_KEY; without it a signed store is refused clearly."""
    path = str(tmp_path / "store.sqlite3")
    with DashDatabase(path, secret_key=KEY) as db:
        db.store_user_value("alice", "theme", "dark")
    monkeypatch.delenv("DASH_DATABASE_SECRET_KEY", raising=False)
    assert main([path, "show", "alice", "theme"]) == 3
    assert "is signed: open the store with its secret_key" in capsys.readouterr().err
    assert main([path, "sign"]) == 2
    assert "DASH_DATABASE_SECRET_KEY" in capsys.readouterr().err
    monkeypatch.setenv("DASH_DATABASE_SECRET_KEY", KEY.decode())
    assert main([path, "show", "alice", "theme"]) == 0
    assert "preview: 'dark'" in capsys.readouterr().out
    with DashDatabase(path) as unsigned:
        unsigned.store_user_value("bob", "theme", "light")  # written without the key
    monkeypatch.setenv("DASH_DATABASE_SECRET_KEY", f"{KEY.decode()}\n{OLD_KEY.decode()}")
    assert main([path, "sign"]) == 0
    assert "signed 1 values" in capsys.readouterr().out
    assert main([path, "export", "--all"]) == 0
    assert '"light"' in capsys.readouterr().out
    stored = (tmp_path / "store.sqlite3").read_bytes()
    assert KEY not in stored
    assert OLD_KEY not in stored
