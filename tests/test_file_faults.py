"""Faults of the volume a SQLite store lives on, made for real: a read-only volume, a full
disk."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from dash_database import DashDatabase, records
from dash_database.backends.sqlite.room import RESERVE_VARIABLE
from dash_database.cli import EXIT_DAMAGED, main
from dash_database.exceptions import DamagedStoreError, DeserializationError, StorageError
from dash_database.streams import CHUNK_SIZE

from helpers import DATA, Clock, Volume

READ_ONLY = "read-only volume"


def _fill(path: Path) -> None:
    """A store with a small value, a side-file value, and an idle user."""
    with DashDatabase(path, expire_after=3600) as db:
        db._backend.chunk_size = 1024
        db.store_user_value("alice", "cart", [1, 2])
        db.store_user_value("alice", "upload", b"x" * 5000)  # in a side file


def test_a_store_on_a_read_only_volume_reads_and_refuses_every_write(
    tmp_path: Path, clock: Clock
) -> None:
    """Remounted read-only, the store opens for reading; each write says the volume is
    read-only and changes nothing."""
    with Volume(tmp_path / "volume") as volume:
        path = volume.folder / "store.sqlite3"
        _fill(path)
        volume.remount(read_only=True)
        with DashDatabase(path, expire_after=3600) as db:
            assert db.get_user_value("alice", "cart") == [1, 2]
            assert db.get_user_value("alice", "upload") == b"x" * 5000
            assert db.list_users() == ["alice"]
            assert db.stats().keys == 2
            clock.advance(7200)  # expired: invisible, though the volume keeps it
            assert db.get_user_value("alice", "cart") is None
            assert db.list_users() == []
            writes: list[Callable[[], object]] = [
                lambda: db.store_user_value("alice", "cart", [3]),
                lambda: db.store_user_value("bob", "upload", b"y" * 5000),
                lambda: db.update_user_value("alice", "n", lambda n: n + 1, default=0),
                lambda: db.delete_user_value("alice", "cart"),
                lambda: db.delete_all_user_values("alice"),
                lambda: db.rename_user("alice", "bob"),
                lambda: db.purge_expired(),
            ]
            for write in writes:
                with pytest.raises(StorageError, match=READ_ONLY):
                    write()
        volume.remount(read_only=False)
        with DashDatabase(path) as db:
            assert db.get_user_value("alice", "cart") == [1, 2]
            assert db.list_stored_user_keys("bob") == []


def test_an_older_file_on_a_read_only_volume_says_it_needs_one_writable_open(
    tmp_path: Path,
) -> None:
    """A file of an older release, which this one upgrades on first open, cannot be upgraded
    on a read-only volume: opening it says what to do."""
    with Volume(tmp_path / "volume") as volume:
        path = volume.folder / "old.db"
        shutil.copy(DATA / "store-2.2.1.db", path)
        volume.remount(read_only=True)
        with pytest.raises(StorageError, match="open it on a writable volume"):
            DashDatabase(path)


def test_a_killed_writers_log_is_read_on_a_read_only_volume(tmp_path: Path) -> None:
    """Writes a killed process left in the write-ahead log read back once the volume is
    read-only."""
    with Volume(tmp_path / "volume") as volume:
        path = volume.folder / "store.sqlite3"
        writer = (
            "import os, sys\nfrom dash_database import DashDatabase\n"
            "db = DashDatabase(sys.argv[1])\n"
            "for n in range(50): db.store_user_value('u', n, n)\n"
            "os._exit(0)  # no close: the log stays, as after a kill\n"
        )
        subprocess.run([sys.executable, "-c", writer, str(path)], check=True)
        assert Path(f"{path}-wal").exists()
        volume.remount(read_only=True)
        with DashDatabase(path) as db:
            assert [db.get_user_value("u", n) for n in range(50)] == list(range(50))


def _until_refused(write: Callable[[int], object]) -> tuple[int, StorageError]:
    """Call ``write(0)``, ``write(1)``... until one raises ``StorageError``: how many did
    not, and the error."""
    done = 0
    while True:
        try:
            write(done)
        except StorageError as exc:
            return done, exc
        done += 1


def _fill_the_disk(db: DashDatabase, size: int) -> int:
    """Write values of ``size`` bytes to users "u0".."u9" until the disk is full; how many."""
    written, refused = _until_refused(
        lambda n: db.store_user_value(f"u{n % 10}", n, os.urandom(size))
    )
    assert refused.errno == errno.ENOSPC
    assert "the disk is full" in str(refused)
    assert "deletes still work" in str(refused)
    return written


def _fill_a_file(path: Path) -> None:
    """Write ``path`` until its volume is full."""
    with open(path, "wb") as out, pytest.raises(OSError, match="No space left"):
        _write_forever(out)


def _write_forever(out: BinaryIO) -> None:
    while True:
        out.write(b"\0" * 65536)
        out.flush()


@pytest.fixture
def full_reserve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stores keep the disk they keep by default (the suite keeps less: see conftest.py)."""
    monkeypatch.delenv(RESERVE_VARIABLE)


@pytest.mark.parametrize(
    ("size", "chunk_size"),
    [(2_000, CHUNK_SIZE), (300_000, CHUNK_SIZE), (300_000, 65_536)],
    ids=["small-values", "large-inline", "side-files"],
)
@pytest.mark.usefixtures("full_reserve")
def test_a_store_that_filled_its_disk_deletes_and_then_writes_again(
    tmp_path: Path, clock: Clock, size: int, chunk_size: int
) -> None:
    """Once values fill the disk (through the write-ahead log, or side files), every way to
    free space works, the CLI's and a new process's too, and the store takes writes again."""
    with Volume(tmp_path / "volume", megabytes=64) as volume:
        path = volume.folder / "store.sqlite3"
        with DashDatabase(path, expire_after=3600) as db:
            db._backend.chunk_size = chunk_size
            written = _fill_the_disk(db, size)
            db.delete_user_value("u0", 0, if_not_exists="raise")
            db.delete_all_user_values("u1")
            assert db.rename_user("u2", "renamed") > 0
            cli = [sys.executable, "-m", "dash_database", str(path), "delete-user", "u3"]
            assert subprocess.run(cli, capture_output=True, text=True).returncode == 0
            with DashDatabase(path) as reopened:
                assert reopened.get_user_value("u4", 4) is not None
            clock.advance(7200)
            assert db.purge_expired() == 8  # u0 and u4 to u9, and "renamed"
            assert db.list_users() == []
            db.store_user_value("u4", "after", os.urandom(size))  # room again
            assert db.list_stored_user_keys("u4") == ["after"]
            assert written > 10


@pytest.mark.usefixtures("full_reserve")
def test_writes_resume_once_another_file_stops_filling_the_disk(tmp_path: Path) -> None:
    """A disk filled by something else: writes fail with ENOSPC, deletes work, and once the
    other file is gone, writes work again."""
    with Volume(tmp_path / "volume", megabytes=64) as volume:
        path = volume.folder / "store.sqlite3"
        with DashDatabase(path) as db:
            db.store_user_value("alice", "cart", [1, 2])
            hog = volume.folder / "hog"
            _fill_a_file(hog)
            _, refused = _until_refused(lambda n: db.store_user_value("alice", n, b"x" * 2000))
            assert refused.errno == errno.ENOSPC
            db.delete_user_value("alice", "cart", if_not_exists="raise")
            hog.unlink()
            db.store_user_value("alice", "cart", [3])
            assert db.get_user_value("alice", "cart") == [3]


def test_the_reserve_size_is_set_by_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DASH_DATABASE_RESERVE_BYTES sets the reserve (0: none); anything else is refused."""
    monkeypatch.setenv(RESERVE_VARIABLE, "0")
    with DashDatabase(tmp_path / "none.sqlite3"):
        assert not (tmp_path / "none.sqlite3-reserve").exists()
    monkeypatch.setenv(RESERVE_VARIABLE, "12345")
    with DashDatabase(tmp_path / "some.sqlite3"):
        assert (tmp_path / "some.sqlite3-reserve").stat().st_size == 12345
    monkeypatch.setenv(RESERVE_VARIABLE, "24 MiB")
    with pytest.raises(ValueError, match=RESERVE_VARIABLE):
        DashDatabase(tmp_path / "bad.sqlite3")


def test_a_write_that_fills_the_disk_fails_in_its_caller_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    """On a full file system every acknowledged write survives and the caller gets the error."""
    with Volume(tmp_path / "volume", megabytes=3) as volume:
        ballast = volume.folder / "ballast"
        ballast.write_bytes(b"\0" * 1024 * 1024)
        db = DashDatabase(volume.folder / "db.sqlite3")
        db._backend.chunk_size = 64 * 1024
        stored, refused = _until_refused(
            lambda n: db.store_user_value("u", n, os.urandom(256 * 1024))
        )
        assert refused.errno == errno.ENOSPC
        assert 0 < stored < 20
        assert db.list_stored_user_keys("u") == list(range(stored))
        assert all(len(db.get_user_value("u", i)) == 256 * 1024 for i in range(stored))
        assert db.get_user_value("other", "k") is None  # the next call does not see the error
        ballast.unlink()  # once there is room again, writes work
        db.delete_user_value("u", stored - 1)
        db.close()
        with DashDatabase(volume.folder / "db.sqlite3") as again:
            assert again.list_stored_user_keys("u") == list(range(stored - 1))


def test_a_new_store_on_a_read_only_volume_fails_naming_the_path(tmp_path: Path) -> None:
    """Nothing can be made on a read-only volume: the error names the file."""
    with Volume(tmp_path / "volume") as volume:
        volume.remount(read_only=True)
        with pytest.raises(StorageError, match=r"db\.sqlite3"):
            DashDatabase(volume.folder / "db.sqlite3")


_WRITER = """
import sys
from dash_database import DashDatabase, records
db = DashDatabase(sys.argv[1])
for line in sys.stdin:
    start, end = map(int, line.split())
    for n in range(start, end):
        db.store_user_value("u", n, n)
    print("done", flush=True)
"""


def test_writes_before_and_after_a_deleted_log_survive_a_kill(tmp_path: Path) -> None:
    """The write-ahead log deleted under a writer, which is then SIGKILLed: every write it
    acknowledged, before and after the deletion, reads back."""
    path = tmp_path / "store.sqlite3"
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdin is not None
    assert writer.stdout is not None
    try:
        for span, delete_log in (("0 200", True), ("200 400", False)):
            writer.stdin.write(span + "\n")
            writer.stdin.flush()
            assert writer.stdout.readline() == "done\n"
            if delete_log:
                Path(f"{path}-wal").unlink()
    finally:
        writer.kill()
        writer.wait()
    with DashDatabase(path) as db:
        assert [db.get_user_value("u", n) for n in range(400)] == list(range(400))


def test_a_deleted_database_file_fails_the_next_write(tmp_path: Path) -> None:
    """The file deleted under an open store: the next write says so, rather than vanish."""
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path) as db:
        db.store_user_value("u", "k", 1)
        path.unlink()
        with pytest.raises(StorageError, match="deleted or replaced"):
            db.store_user_value("u", "k", 2)


@pytest.mark.parametrize("wipe", ["truncate", "delete"])
def test_a_wiped_file_whose_side_files_remain_is_not_opened_as_empty(
    tmp_path: Path, wipe: str
) -> None:
    """A file truncated to nothing, or deleted, beside its side files is refused, never
    opened as an empty store."""
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path) as db:
        db._backend.chunk_size = 1024
        db.store_user_value("u", "upload", b"x" * 5000)
    if wipe == "truncate":
        path.write_bytes(b"")
    else:
        path.unlink()
    with pytest.raises(StorageError, match="was empty or missing, but"):
        DashDatabase(path)


def test_a_log_deleted_under_an_open_store_is_saved_and_the_store_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Reads and writes go on after the log is deleted: its writes are copied into the file,
    a warning says what happened, and another process reads everything."""
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path) as db:
        for n in range(50):
            db.store_user_value("u", n, n)
        Path(f"{path}-wal").unlink()
        with caplog.at_level(logging.WARNING, "dash_database"):
            assert db.get_user_value("u", 49) == 49
            db.store_user_value("u", 50, 50)
        assert "write-ahead log was deleted" in caplog.text
        reader = (
            "import sys\nfrom dash_database import DashDatabase\n"
            "print(len(DashDatabase(sys.argv[1]).list_stored_user_keys('u')))"
        )
        done = subprocess.run([sys.executable, "-c", reader, str(path)], capture_output=True)
        assert done.stdout == b"51\n"


def test_a_truncated_or_swapped_side_file_is_reported_never_read_as_data(tmp_path: Path) -> None:
    """A side file cut short, or two swapped, fails to read naming the user and key, and
    stats(check=True) counts each as missing."""
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path) as db:
        db._backend.chunk_size = 1024
        db.store_user_value("alice", "upload", b"a" * 5000)
        db.store_user_value("bob", "upload", b"b" * 9000)
        db.store_user_value("carol", "upload", b"c" * 5000)
        files = _side_file_paths(db)
        files["alice"].write_bytes(files["alice"].read_bytes()[:2000])
        bob, carol = files["bob"].read_bytes(), files["carol"].read_bytes()
        files["bob"].write_bytes(carol)
        files["carol"].write_bytes(bob)
        for user in ("alice", "bob", "carol"):
            with pytest.raises(DeserializationError, match=f"user_id='{user}'"):
                assert db.get_user_value(user, "upload") != b"x"
        assert db.inspect.stats(check=True).missing == 3
        assert db.inspect.key_sizes("alice") == {"upload": None}


def test_side_files_of_one_size_swapped_or_flipped_are_reported_never_read_as_data(
    tmp_path: Path,
) -> None:
    """Two side files of the same size swapped, or a byte flipped in one, fail to read naming
    the user and key (their checksums differ), and check() reports each as damaged."""
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path) as db:
        db._backend.chunk_size = 1024
        for user in ("alice", "bob", "carol"):
            db.store_user_value(user, "upload", user[0].encode() * 5000)
        files = _side_file_paths(db)
        alice, bob = files["alice"].read_bytes(), files["bob"].read_bytes()
        files["alice"].write_bytes(bob)
        files["bob"].write_bytes(alice)
        carol = bytearray(files["carol"].read_bytes())
        carol[-100] ^= 0x01
        files["carol"].write_bytes(bytes(carol))
        for user in ("alice", "bob", "carol"):
            with pytest.raises(DeserializationError, match=f"user_id='{user}' does not match"):
                db.get_user_value(user, "upload")
        assert db.inspect.stats(check=True).missing == 3
        problems = db.inspect.check().problems
        assert sorted((p.kind, p.user_id) for p in problems) == [
            ("damaged", "alice"),
            ("damaged", "bob"),
            ("damaged", "carol"),
        ]


def _side_file_paths(db: DashDatabase) -> dict[str, Path]:
    """The side file of each user's one value in a side file."""
    folder = Path(db._backend.files.folder)  # type: ignore[attr-defined]
    rows = db._backend._conn.query("SELECT key, value FROM dash_database")  # type: ignore[attr-defined]
    return {
        json.loads(key)[0]: folder / records.split(record)[1].decode()
        for key, record in rows
        if records.is_chunked(record)
    }


@pytest.mark.parametrize("missing", ["absent", "refused"])
def test_the_reserve_is_written_where_it_cannot_be_allocated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """Without posix_fallocate (macOS), or on a file system that refuses it, the reserve is
    written out, at its full size."""
    if missing == "absent":
        monkeypatch.delattr(os, "posix_fallocate")
    else:

        def refuse(fd: int, offset: int, length: int) -> None:
            raise OSError(errno.EOPNOTSUPP, "not supported")

        monkeypatch.setattr(os, "posix_fallocate", refuse)
    monkeypatch.setenv(RESERVE_VARIABLE, str(3 * 1024 * 1024 + 5))
    with DashDatabase(tmp_path / "store.sqlite3") as db:
        db.store_user_value("u", "k", 1)
    assert (tmp_path / "store.sqlite3-reserve").stat().st_size == 3 * 1024 * 1024 + 5


def test_a_byte_flipped_in_the_database_file_is_reported_never_read_as_data(
    tmp_path: Path,
) -> None:
    """A bit flipped on disk inside an unsigned value's record raises DeserializationError
    naming its user and key; the other values still read."""
    path = tmp_path / "store.sqlite3"
    with DashDatabase(path) as db:
        db.store_user_value("alice", "note", "marker-" + "a" * 200)
        db.store_user_value("bob", "note", "bob's")
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    stored = bytearray(path.read_bytes())
    stored[stored.index(b"marker-") + 50] ^= 0x01  # 'a' becomes '`': still a str
    path.write_bytes(bytes(stored))
    with DashDatabase(path) as db:
        with pytest.raises(DeserializationError, match="user_id='alice' does not match"):
            db.get_user_value("alice", "note")
        assert db.get_user_value("bob", "note") == "bob's"


def _filled_store(path: Path) -> int:
    """A store of 2,000 small values, closed (its log copied into the file); its size."""
    with DashDatabase(path) as db:
        for user in range(400):
            for key in range(5):
                db.store_user_value(user, key, f"value {user} {key}")
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path.stat().st_size


def test_a_file_cut_to_half_is_refused_as_damaged_saying_how_to_save_the_rest(
    tmp_path: Path,
) -> None:
    """Opening a file truncated to half raises DamagedStoreError naming .recover; the CLI's
    check says the same and exits 4, as on any damage."""
    path = tmp_path / "store.sqlite3"
    size = _filled_store(path)
    with open(path, "r+b") as file:
        file.truncate(size // 2)
    with pytest.raises(DamagedStoreError, match=r"the file is damaged .*\.recover"):
        DashDatabase(path)
    out = io.StringIO()
    assert main([str(path), "check", "--json"], out=out) == EXIT_DAMAGED
    assert ".recover" in json.loads(out.getvalue())["error"]


def test_pages_zeroed_in_place_fail_their_reads_and_check_never_a_wrong_value(
    tmp_path: Path,
) -> None:
    """With four pages in the middle of the file zeroed, each value reads as stored or
    raises DamagedStoreError, never another value; check reports the damage and exits 4."""
    path = tmp_path / "store.sqlite3"
    size = _filled_store(path)
    with open(path, "r+b") as file:
        file.seek(size // 2 - size // 2 % 4096)
        file.write(bytes(4 * 4096))
    failed = 0
    with DashDatabase(path) as db:
        for user in range(400):
            for key in range(5):
                try:
                    assert db.get_user_value(user, key) == f"value {user} {key}"
                except DamagedStoreError:
                    failed += 1
        report = db.inspect.check()
    assert 0 < failed < 2000
    assert not report.healthy
    assert {p.kind for p in report.problems} == {"storage"}
    assert main([str(path), "check"], out=io.StringIO()) == EXIT_DAMAGED
