"""What a store says is never trusted: crafted names, chunk references and lengths are refused."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from dash_database import DashDatabase
from dash_database.backends.sqlite import side_files
from dash_database.exceptions import (
    DashDatabaseError,
    DeserializationError,
)

from helpers import require_redis_server

TAGS = {"pickle": b"p", "json": b"j"}


@pytest.fixture(params=["absolute", "parent"])
def outside(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, bytes]:
    """A file outside the values folder, and the name a forged record gives it."""
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    name = str(secret) if request.param == "absolute" else "../secret.txt"
    return secret, name.encode()


def forge(path: Path, user: str, key: str, record: bytes) -> None:
    """Write a record straight into the file, as anyone who can write it could."""
    with sqlite3.connect(path) as conn:
        conn.execute(
            'REPLACE INTO "dash_database" (key, value, user, size) VALUES (?, ?, ?, ?)',
            (f'["{user}","{key}"]', record, f'"{user}"', len(record)),
        )


@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_a_forged_side_file_name_never_reaches_outside_the_folder(
    tmp_path: Path,
    serializer: str,
    outside: tuple[Path, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """get refuses a forged name; overwrite, delete, delete-user and purge leave the file alone."""
    secret, name = outside
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path, serializer=serializer) as db:
        for user in ("get", "overwrite", "delete", "delete-user", "purge"):
            db.store_user_value(user, "k", "v")
            forge(path, user, "k", TAGS[serializer] + name)
        with pytest.raises(DeserializationError, match=r"key_name='k' of user_id='get'"):
            db.get_user_value("get", "k")
        with pytest.raises(DeserializationError, match="damaged or forged"):
            db.inspect.head("get", "k")
        assert db.inspect.user_stats("get", check=True).missing == 1
        with caplog.at_level(logging.WARNING, logger="dash_database"):
            db.store_user_value("overwrite", "k", "new")
            assert db.get_user_value("overwrite", "k") == "new"
            db.delete_user_value("delete", "k")
            db.delete_all_user_values("delete-user")
            assert db.purge_expired(older_than=1e-9) >= 1
        assert "ignored a damaged side-file name" in caplog.text
        assert str(tmp_path / "store.sqlite3-values") in caplog.text  # warnings name the path
    assert secret.read_text() == "host secret"


def test_a_link_planted_in_the_values_folder_is_not_followed(tmp_path: Path) -> None:
    """A side file replaced by a symlink to a file outside is not read through the link."""
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path) as db:
        db._backend.chunk_size = 1024
        db.store_user_value("u", "big", b"x" * 5000)
        (name,) = os.listdir(db._backend.files.folder)  # type: ignore[attr-defined]
        target = tmp_path / "secret.txt"
        target.write_bytes(b"host secret")
        link = Path(db._backend.files.folder) / name  # type: ignore[attr-defined]
        link.unlink()
        link.symlink_to(target)
        with pytest.raises(DashDatabaseError):
            db.get_user_value("u", "big")


def test_a_side_file_vanishing_during_garbage_collection_is_tolerated(
    file_db: DashDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file removed by another process while collection looks at it is skipped, not raised."""
    os.makedirs(file_db._backend.files.folder)  # type: ignore[attr-defined]

    class Vanished:
        name = "0" * 32
        path = "/nonexistent/" + name

        def stat(self, follow_symlinks: bool = True) -> os.stat_result:
            raise FileNotFoundError(self.path)

    monkeypatch.setattr(side_files.os, "scandir", lambda folder: iter([Vanished()]))  # type: ignore[attr-defined]
    assert file_db.purge_expired(older_than=1) == 0


def redis_record(db: DashDatabase, user: str, key: str, record: bytes) -> None:
    """Write a record straight into the user's hash, as any client of the server could."""
    engine = db._backend
    engine._server.client().hset(engine._hash(user), f'"{key}"', record)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "record",
    [b"p" + b"0" * 32 + b":1000000000", b"p../../etc:2", b"p" + b"A" * 32 + b":1", b"pjunk"],
)
def test_forged_redis_chunk_references_are_refused_promptly(redis_url: str, record: bytes) -> None:
    """A crafted count or version raises DeserializationError; delete works; the server answers."""
    with DashDatabase(redis_url, prefix=f"test-{uuid.uuid4().hex}:", timeout=5) as db:
        db.store_user_value("u", "k", "v")
        redis_record(db, "u", "k", record)
        with pytest.raises(DeserializationError, match="key_name='k' of user_id='u'"):
            db.get_user_value("u", "k")
        assert db.inspect.user_stats("u", check=True).missing == 1
        db.store_user_value("u", "k", "replaced")  # the script skips the forged references
        redis_record(db, "u", "k", record)
        db.delete_user_value("u", "k", if_not_exists="raise")
        redis_record(db, "u", "k", record)
        db.delete_all_user_values("u")
        assert db._backend._server.client().ping()  # type: ignore[attr-defined]
        assert db.list_users() == []


PEAK = """
import resource, struct, sys
from dash_database import DashDatabase
from dash_database.exceptions import DeserializationError

location = sys.argv[1]
# Without a checksum, as an older version writes: the crafted stream reaches the decoder.
options = {"prefix": sys.argv[2]} if len(sys.argv) > 2 else {}
db = DashDatabase(location, checksum=False, **options)
db._backend.chunk_size = 1024
db.store_user_value("u", "k", b"x" * 5000)  # a value in pieces: side file or chunks
# PROTO 5, then a FRAME that claims 4 GiB, then a BINBYTES8 that claims as much.
crafted = b"\\x80\\x05\\x95" + struct.pack("<Q", 2**32) + b"\\x8e" + struct.pack("<Q", 2**32)
engine = db._backend
if location == ":memory:":
    engine._values["u"]["k"] = (b"P", (crafted, b"y" * 1024))
elif location.startswith("redis"):
    record = engine._server.client().hget(engine._hash("u"), '"k"')
    first = engine._store().chunks.keys_of(record[1:], "u", "k")[0]
    engine._server.client().set(first, crafted)
else:
    import os
    folder = engine.files.folder
    with open(os.path.join(folder, os.listdir(folder)[0]), "r+b") as file:
        file.write(crafted)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    db.get_user_value("u", "k")
except DeserializationError:
    pass
else:
    raise SystemExit("the crafted value was read")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.parametrize("engine", ["memory", "file", "redis"])
def test_a_crafted_pickle_length_allocates_no_more_than_it_receives(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A stream that claims 4 GiB costs under one chunk (8 MiB) of peak memory, and is refused."""
    args = {"memory": [":memory:"], "file": [str(tmp_path / "s.sqlite3")]}.get(engine)
    if args is None:
        require_redis_server()
        args = [request.getfixturevalue("redis_url"), f"test-{uuid.uuid4().hex}:"]
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    grown_kib = int(done.stdout.split()[-1])
    assert grown_kib < 8 * 1024
