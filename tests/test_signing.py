"""Signed values: unsigned, forged, wrong-key, altered and moved records are refused unread."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
import redis

from dash_database import DashDatabase
from dash_database.cli import main
from dash_database.exceptions import DeserializationError
from dash_database.serialization import Codec
from dash_database.signing import FRAME, MAC_SIZE

from helpers import KEY, OLD_KEY, Marker, write_with


def test_a_side_file_altered_on_disk_is_refused(tmp_path: Path) -> None:
    """A byte flipped in a side file, or a frame spliced from another value, is refused."""
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path, secret_key=KEY) as db:
        db._backend.chunk_size = 1024
        db.store_user_value("u", "a", b"a" * (2 * FRAME + 5))
        (file_a,) = (tmp_path / "store.sqlite3-values").iterdir()
        db.store_user_value("u", "b", b"a" * (2 * FRAME + 5))
        (file_b,) = set((tmp_path / "store.sqlite3-values").iterdir()) - {file_a}
        spliced = bytearray(file_a.read_bytes())
        # Frame 1 of value b (the same data, another record id) in place of value a's.
        second = slice(FRAME + MAC_SIZE, 2 * (FRAME + MAC_SIZE))
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
        db._backend.chunk_size = 64 * 1024
        db.store_user_value("u", "k", b"x" * 200_000)
        client = redis.Redis.from_url(redis_url)
        chunk = sorted(client.keys(f"{prefix}*chunk:*"))[1]
        client.setrange(chunk, 10, b"\xff")
        with pytest.raises(DeserializationError, match="altered"):
            db.get_user_value("u", "k")


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
    out = capsys.readouterr().out
    assert "signed 0 values; 1 refused" in out
    assert "user 'bob' key 'theme': " in out
    assert main([path, "sign", "--trust-unsigned-values"]) == 0
    assert "signed 1 values" in capsys.readouterr().out
    assert main([path, "export", "--all"]) == 0
    assert '"light"' in capsys.readouterr().out
    stored = (tmp_path / "store.sqlite3").read_bytes()
    assert KEY not in stored
    assert OLD_KEY not in stored


def test_cli_rotation_signs_nothing_planted_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`sign` after a rotation refuses and lists planted unsigned pickles, never unpickling one."""
    path = str(tmp_path / "store.sqlite3")
    marker = tmp_path / "ran"
    with DashDatabase(path, secret_key=OLD_KEY) as db:
        db.store_user_value("bob", "role", "user")
        write_with(db, Codec("pickle"), "bob", "role", "admin")  # planted without the key
        write_with(db, Codec("pickle"), "bob", "payload", Marker(marker))
        db.store_user_value("alice", "cart", ["apple"])
    monkeypatch.setenv("DASH_DATABASE_SECRET_KEY", f"{KEY.decode()}\n{OLD_KEY.decode()}")
    assert main([path, "sign", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not marker.exists()
    assert (report["signed"], report["refused"]) == (1, 2)
    assert sorted(refusal["key"] for refusal in report["refusals"]) == ["payload", "role"]
    with DashDatabase(path, secret_key=KEY) as db:  # the old key retired
        assert db.get_user_value("alice", "cart") == ["apple"]
        with pytest.raises(DeserializationError, match="is not signed"):
            db.get_user_value("bob", "role")
    assert not marker.exists()
