"""The embedded engine: one SQLite file (or memory), shared by threads and processes.

sqlitedict creates and owns the values table (``key TEXT PRIMARY KEY, value
BLOB``), so the file stays a plain sqlitedict database, and a memory database
lives on sqlitedict's connection. This module adds:

* **Keys that cannot collide.** A record key is the JSON text of
  ``[user_id, key_name]``. JSON keeps ``1`` apart from ``"1"`` and ends every
  id unambiguously, so one user's records are exactly one range of the primary
  key index: listing and deleting a user is an index range, never a scan.
* **Errors in the caller.** sqlitedict queues a write and raises its error in
  whichever call comes next, possibly another user's. On a memory database,
  every statement sent to its thread is followed by a round trip on the same
  queue, under one lock, so its error is raised by the call that caused it.
* **Writes without the queue.** That round trip to sqlitedict's thread costs
  about 70 us, three quarters of a small write (4,700 writes/s against 17,000
  on a plain connection, measured here). File databases therefore write on one
  plain connection of their own, used by one thread at a time under a lock, and
  read on a small pool of connections: in WAL mode readers never block the
  writer. Nothing about the file changes.
* **Transactions.** ``BEGIN IMMEDIATE`` ... ``COMMIT`` for read-modify-write;
  sqlitedict has no transaction primitive.
* **Large values beside the file.** A value larger than :data:`CHUNK_SIZE` is
  streamed to its own file in the folder ``<database>-values`` before its
  record, which names the file, is committed. Writing it through SQLite instead
  would copy it into the WAL and again into the database (8x a plain pickle
  dump for 400 MB, measured here). A replaced or deleted record moves its file
  name to a trash table in the same statement (a trigger), and the file is
  removed after the commit, so a crash at any point leaves every committed
  value whole; only a file whose record never committed can be left over, and
  :meth:`SqliteBackend.collect_garbage` removes those. A memory database keeps
  large values in a chunks table instead.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import sqlite3
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO

from sqlitedict import SqliteDict

from ..exceptions import InvalidLocationError, StorageError
from ..keys import Key, encode_key
from ..serialization import CHUNK_SIZE, ChunkWriter, Codec, is_chunked
from .base import MISSING, Backend

logger = logging.getLogger("dash_database")

MEMORY = ":memory:"
DURABILITY = {"normal": "NORMAL", "full": "FULL"}
#: A side file with no record this much older than now (or twice the timeout,
#: if longer) is a leftover of a writer that died before committing.
ORPHAN_SECONDS = 3600
_READ_ATTEMPTS = 5

_VALUES = "dash_database"
_CHUNKS = "dash_database_chunks"
_SESSIONS = "dash_database_sessions"
_TRASH = "dash_database_trash"
# A record that names a side file: a chunked tag ("p" or "j") and more bytes.
_NAMES_FILE = "length({0}) > 1 AND substr({0}, 1, 1) IN (x'70', x'6a')"
_FILE_NAME = "CAST(substr({0}, 2) AS TEXT)"
_SCHEMA = (
    # A user's last activity (a time.time()), written before its values.
    f'CREATE TABLE IF NOT EXISTS "{_SESSIONS}" (user TEXT PRIMARY KEY, seen REAL NOT NULL)',
    f'CREATE INDEX IF NOT EXISTS "{_SESSIONS}_seen" ON "{_SESSIONS}" (seen)',
    f'CREATE TABLE IF NOT EXISTS "{_CHUNKS}" '
    "(key TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (key, seq))",
    # Side files whose record is gone; each is removed after the commit.
    f'CREATE TABLE IF NOT EXISTS "{_TRASH}" (name TEXT PRIMARY KEY)',
    # A value's chunks and side file go away inside the statement that replaces
    # or deletes its record, so that a single write or a user-wide delete stays
    # one atomic statement with no transaction around it.
    f'CREATE TRIGGER IF NOT EXISTS "{_VALUES}_replace" BEFORE INSERT ON "{_VALUES}" '
    f'BEGIN DELETE FROM "{_CHUNKS}" WHERE key = NEW.key; '
    f'INSERT OR IGNORE INTO "{_TRASH}" SELECT {_FILE_NAME.format("value")} FROM "{_VALUES}" '
    f"WHERE key = NEW.key AND {_NAMES_FILE.format('value')}; END",
    f'CREATE TRIGGER IF NOT EXISTS "{_VALUES}_delete" AFTER DELETE ON "{_VALUES}" '
    f'BEGIN DELETE FROM "{_CHUNKS}" WHERE key = OLD.key; '
    f'INSERT OR IGNORE INTO "{_TRASH}" SELECT {_FILE_NAME.format("OLD.value")} '
    f"WHERE {_NAMES_FILE.format('OLD.value')}; END",
)
_GET = f'SELECT value FROM "{_VALUES}" WHERE key = ?'
_HAS = f'SELECT 1 FROM "{_VALUES}" WHERE key = ?'
_PUT = f'REPLACE INTO "{_VALUES}" (key, value) VALUES (?, ?)'
_DELETE = f'DELETE FROM "{_VALUES}" WHERE key = ?'
_RANGE = "key >= ? AND key < ?"
_KEYS = f'SELECT key FROM "{_VALUES}" WHERE {_RANGE}'
_COUNT = f'SELECT count(*) FROM "{_VALUES}" WHERE {_RANGE}'
_DELETE_RANGE = f'DELETE FROM "{_VALUES}" WHERE {_RANGE}'
_ALL_KEYS = f'SELECT key FROM "{_VALUES}"'
_PUT_CHUNK = f'INSERT INTO "{_CHUNKS}" (key, seq, data) VALUES (?, ?, ?)'
_CHUNKS_OF = f'SELECT data FROM "{_CHUNKS}" WHERE key = ? ORDER BY seq'
_FIRST_CHUNK = f'SELECT substr(data, 1, ?) FROM "{_CHUNKS}" WHERE key = ? AND seq = 0'
_SIZES = (
    f'SELECT key, length(value) + coalesce((SELECT sum(length(data)) FROM "{_CHUNKS}" AS c '
    f"WHERE c.key = v.key), 0), CASE WHEN {_NAMES_FILE.format('value')} "
    f'THEN {_FILE_NAME.format("value")} END FROM "{_VALUES}" AS v'
)
_ALL_FILES = (
    f'SELECT {_FILE_NAME.format("value")} FROM "{_VALUES}" WHERE {_NAMES_FILE.format("value")}'
)
_TRASHED = f'SELECT name FROM "{_TRASH}"'
_UNTRASH = f'DELETE FROM "{_TRASH}" WHERE name = ?'
_SEEN = f'SELECT seen FROM "{_SESSIONS}" WHERE user = ?'
_ALL_SEEN = f'SELECT user, seen FROM "{_SESSIONS}"'
_MARK = (
    f'INSERT INTO "{_SESSIONS}" (user, seen) VALUES (?, ?) '
    "ON CONFLICT (user) DO UPDATE SET seen = max(seen, excluded.seen)"
)
_REFRESH = f'UPDATE "{_SESSIONS}" SET seen = max(seen, ?) WHERE user = ?'
_IDLE = f'SELECT user FROM "{_SESSIONS}" WHERE seen < ? ORDER BY seen LIMIT ?'
_IS_IDLE = f'EXISTS (SELECT 1 FROM "{_SESSIONS}" WHERE user = ? AND seen < ?)'
_DELETE_IDLE_RANGE = f"{_DELETE_RANGE} AND {_IS_IDLE}"
_FORGET = f'DELETE FROM "{_SESSIONS}" WHERE user = ?'
_FORGET_IDLE = f'DELETE FROM "{_SESSIONS}" WHERE user = ? AND seen < ?'

Rows = list[tuple[Any, ...]]


def record_key(user_id: Key, key_name: Key) -> str:
    """The primary key of one value: the JSON text of ``[user_id, key_name]``."""
    return f"[{encode_key(user_id)},{encode_key(key_name)}]"


def user_range(user_id: Key) -> tuple[str, str]:
    """The half-open range of record keys that belong to ``user_id``, and to nobody else."""
    # Every record key of the user starts with this prefix; since "-" follows ","
    # in every collation, prefix[:-1] + "-" is the first text past all of them.
    prefix = "[" + encode_key(user_id) + ","
    return prefix, prefix[:-1] + "-"


def _check_path(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidLocationError(
            f"db_location={path!r}: the folder {folder!r} does not exist; create it first"
        )
    if os.path.isdir(path):
        raise InvalidLocationError(
            f"db_location={path!r} is a folder; pass a file path inside it, "
            f"e.g. {os.path.join(path, 'dash_database.sqlite3')!r}"
        )
    # The file's header is left for SQLite to check (see _start): opening and
    # closing the file here would drop every POSIX lock this process holds on
    # it, and a connection that lost its shared lock can have its WAL deleted
    # under it by another process that then believes it is the last one.


def _remove_temp_dir(path: str, owner_pid: int) -> None:
    # A forked worker inherits the finalizer; only the creating process cleans up.
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)
        logger.debug("removed the temporary database folder %s", path)


def _hint(text: str, timeout: float | None = None) -> str:
    """What an engine error message means for the user."""
    if "locked" in text or "busy" in text:
        return f"another connection held the lock for more than timeout={timeout}s"
    if "readonly" in text or "read-only" in text:
        return "the database file or its folder is read-only"
    if "full" in text or "No space" in text:
        return "the disk or the database's size limit is full"
    return "SQLite refused the operation"


class _SideFile:
    """A write-only file that keeps a value in memory until it outgrows one record,
    then streams it into a new side file.

    :param folder: where side files go (made when first needed).
    :param limit: the largest value kept in the record itself.
    :param sync: fsync the file and its folder before the record is committed.
    """

    def __init__(self, folder: str, limit: int, sync: bool) -> None:
        self._folder, self._limit, self._sync = folder, limit, sync
        self._buf = bytearray()
        self._file: BinaryIO | None = None
        self.path: str | None = None

    def _fail(self, exc: OSError) -> StorageError:
        where = self.path or self._folder
        return StorageError(f"{where}: {exc} ({_hint(str(exc))}); this call changed nothing")

    def write(self, data: Any) -> int:
        """Append ``data`` (any bytes-like object); return its length."""
        view = memoryview(data).cast("B")
        try:
            if self._file is None:
                if len(self._buf) + len(view) <= self._limit:
                    self._buf += view
                    return len(view)
                os.makedirs(self._folder, exist_ok=True)
                self.path = os.path.join(self._folder, secrets.token_hex(16))
                self._file = open(self.path, "xb")  # noqa: SIM115 (closed in finish or discard)
                self._file.write(self._buf)
                self._buf = bytearray()
            # Large pickle buffers (a DataFrame's columns) arrive here whole and
            # go straight to the file, never copied.
            self._file.write(view)
        except OSError as exc:
            raise self._fail(exc) from exc
        return len(view)

    def finish(self, codec: Codec) -> bytes:
        """Close the side file, if any; return the record that stands for the value."""
        if self._file is None:
            return codec.tag + self._buf
        assert self.path is not None
        try:
            self._file.flush()
            if self._sync:
                os.fsync(self._file.fileno())
            self._file.close()
            if self._sync:
                # The file's name must be on disk before the record naming it.
                folder = os.open(self._folder, os.O_RDONLY)
                try:
                    os.fsync(folder)
                finally:
                    os.close(folder)
        except OSError as exc:
            raise self._fail(exc) from exc
        return codec.chunked_tag + os.path.basename(self.path).encode()

    def discard(self) -> None:
        """Remove the side file of a value whose record was not committed."""
        if self._file is None or self.path is None:
            return
        with suppress(OSError):  # a full disk can fail the close's flush too
            self._file.close()
        with suppress(FileNotFoundError):
            os.unlink(self.path)


class _ValueWrite:
    """Streams one value into a memory database; begins a transaction only if it spans chunks."""

    def __init__(self, backend: SqliteBackend, key: str, own_transaction: bool) -> None:
        self._backend = backend
        self._key = key
        self._own_transaction = own_transaction
        self._begun = False
        self._chunks = 0

    def add_chunk(self, chunk: bytes) -> None:
        """Store the next full chunk (the first one also writes the record)."""
        backend = self._backend
        if self._chunks == 0:
            if self._own_transaction:
                backend.run("BEGIN IMMEDIATE")
                self._begun = True
            backend.change(_PUT, (self._key, backend.codec.chunked_tag))
        backend.change(_PUT_CHUNK, (self._key, self._chunks, chunk))
        self._chunks += 1

    def finish(self, tail: bytes) -> None:
        """Store what is left and commit."""
        if self._chunks == 0:
            record = self._backend.codec.tag + tail
            self._backend.change(_PUT, (self._key, record), commit=self._own_transaction)
            return
        if tail:
            self.add_chunk(tail)
        if self._begun:
            self._backend.run("COMMIT")

    def abort(self) -> None:
        """Undo a transaction this write began."""
        if self._begun:
            self._backend.rollback()


class SqliteBackend(Backend):
    """Values in a SQLite file (or in memory), via sqlitedict.

    :param location: a file path, :data:`MEMORY`, or ``None`` for a private
        temporary file removed on close and at interpreter exit.
    :param codec: the serializer.
    :param timeout: seconds to wait for another connection's write lock.
    :param durability: ``"normal"`` (survives a process crash) or ``"full"``
        (also survives power loss, with an fsync per commit).
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | None,
        codec: Codec,
        *,
        timeout: float,
        durability: str,
    ) -> None:
        super().__init__(codec)
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {tuple(DURABILITY)}, not {durability!r}")
        self._timeout = timeout
        self._synchronous = DURABILITY[durability]
        self.chunk_size = CHUNK_SIZE
        self._finalizer: weakref.finalize[[str, int], SqliteBackend] | None = None
        if location is None:
            # mkdtemp makes the folder 0700; SQLite gives its side files the
            # mode of the database file, so they stay private too.
            folder = tempfile.mkdtemp(prefix="dash_database-")
            path = os.path.join(folder, "dash_database.sqlite3")
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            self._finalizer = weakref.finalize(self, _remove_temp_dir, folder, os.getpid())
        else:
            path = os.fspath(location)
            if path != MEMORY:
                _check_path(path)
        self.location = path
        self._memory = path == MEMORY
        #: Where large values go, beside the database file.
        self.folder = os.path.abspath(path) + "-values"
        self._start()
        _LIVE.add(self)
        logger.debug("opened %s (synchronous=%s)", path, self._synchronous)

    def _start(self) -> None:
        self._lock = threading.Lock()
        self._lock_owner: int | None = None
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        self._writer: sqlite3.Connection | None = None
        # A process that died between a commit and removing the files it
        # trashed left them for whoever writes next: look once after opening.
        self._trashed = not self._memory
        try:
            if not self._memory:
                self._writer = sqlite3.connect(
                    self.location,
                    timeout=self._timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
                # SQLite reads the header and switches to WAL here, so a file
                # that is not a database, or that cannot be written, fails in
                # this thread instead of killing sqlitedict's with a traceback.
                self._writer.execute("PRAGMA journal_mode = WAL")
            self._dict = SqliteDict(
                self.location,
                tablename=_VALUES,
                # Not autocommit: sqlitedict would then commit after every
                # statement, even inside our BEGIN ... COMMIT. We send COMMIT as
                # a statement; sqlitedict's own commit() runs outside its error
                # handling, and a failure there kills its thread.
                autocommit=False,
                # WAL lets readers in other threads and processes go on while
                # one writer commits, and survives a process crash at any point.
                journal_mode="WAL",
                # The stack capture costs more than the statement itself.
                outer_stack=False,
            )
            if not self._memory:
                # The table exists now; a file database needs the thread no more.
                self._dict.close()
            for statement in (
                f"PRAGMA busy_timeout = {int(self._timeout * 1000)}",
                # sqlitedict sets synchronous=OFF; NORMAL in WAL mode loses
                # nothing on a process crash, FULL nothing on power loss.
                f"PRAGMA synchronous = {self._synchronous}",
                *_SCHEMA,
            ):
                self.run(statement)
        except sqlite3.DatabaseError as exc:
            if self._writer is not None:
                self._writer.close()
            if "not a database" in str(exc):
                raise InvalidLocationError(
                    f"db_location={self.location!r} exists but is not a SQLite database; "
                    "pass a new path or an existing dash_database file"
                ) from exc
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> StorageError:
        text = str(exc)
        hint = _hint(text, self._timeout)
        return StorageError(f"{self.location}: {text} ({hint}); this call changed nothing")

    @contextmanager
    def _engine(self) -> Iterator[None]:
        """Hold the writing connection for one whole operation."""
        # A callback of ours (update's func, a value's __reduce__) calling the
        # database again from inside would wait for itself forever.
        if self._lock_owner == threading.get_ident():
            raise RuntimeError(
                "the database was called from inside one of its own operations (the func of "
                "update_user_value, or while pickling a value); call it before or after instead"
            )
        with self._lock:
            self._lock_owner = threading.get_ident()
            try:
                yield
            finally:
                self._lock_owner = None

    def run(self, sql: str, args: tuple[Any, ...] = ()) -> Rows:
        """Run one statement on the writing connection; its error raises here."""
        try:
            if self._writer is not None:
                return self._writer.execute(sql, args).fetchall()
            return list(self._dict.conn.select(sql, args))
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def change(self, sql: str, args: tuple[Any, ...], commit: bool = False) -> int:
        """Run one write statement, maybe commit, and return how many rows it changed."""
        if self._writer is not None:
            try:
                before = self._writer.total_changes
                changed = self._writer.execute(sql, args).rowcount
                # total_changes also counts rows the triggers wrote: a file
                # name moved to the trash. Only then is the trash worth a look.
                if self._writer.total_changes - before > changed:
                    self._trashed = True
                # Outside BEGIN the statement committed itself.
                if commit and self._writer.in_transaction:
                    self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            return changed
        conn = self._dict.conn
        try:
            conn.execute(sql, args)
            if commit:
                conn.execute("COMMIT")
            # The select waits for the statements queued before it and raises
            # their error, here, before anybody else can use the connection.
            row = conn.select_one("SELECT changes()")
        except sqlite3.Error as exc:
            if "no transaction is active" in str(exc):
                # sqlitedict keeps only the last error: the write failed, SQLite
                # rolled it back, and the COMMIT after it found nothing to commit.
                exc = sqlite3.OperationalError(
                    "the write failed and SQLite rolled it back (see the 'sqlitedict' log)"
                )
            raise self._error(exc) from exc
        return int(row[0]) if row else 0

    def rollback(self) -> None:
        """Roll back the open transaction, if SQLite has not already done so."""
        try:
            self.run("ROLLBACK")
        except StorageError:
            logger.debug("rollback on %s: no transaction was open", self.location)

    def _empty_trash(self) -> None:
        """Remove the side files of records deleted or replaced by committed writes."""
        if not self._trashed:
            return
        self._trashed = False
        try:
            for (name,) in self.run(_TRASHED):
                try:
                    os.unlink(os.path.join(self.folder, name))
                except FileNotFoundError:
                    pass  # another process got there first
                except OSError as exc:
                    # The write itself committed; the file waits for the next try.
                    logger.warning("%s: cannot remove side file %s: %s", self, name, exc)
                    continue
                self.change(_UNTRASH, (name,))
        except StorageError as exc:
            logger.warning("%s: side files were not cleaned up yet: %s", self, exc)

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = sqlite3.connect(
                self.location,
                timeout=self._timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._pool_lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    def _query(self, sql: str, args: tuple[Any, ...]) -> Rows:
        if self._memory:
            # A memory database exists only on sqlitedict's connection.
            with self._engine():
                return self.run(sql, args)
        try:
            with self._reader() as conn:
                return conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _load(self, key: str, record: bytes) -> Any:
        """The value of ``record``: inline, in a side file, or (in memory) in chunks.

        :raises FileNotFoundError: the side file was removed after ``record`` was read.
        """
        if not is_chunked(record):
            return self.codec.load_record(record)
        self.codec.check_tag(record[:1])
        if self._memory:
            return self.codec.load(bytes(row[0]) for row in self.run(_CHUNKS_OF, (key,)))
        with open(os.path.join(self.folder, bytes(record[1:]).decode()), "rb") as file:
            return self.codec.load_file(file)

    def _load_on_writer(self, key: str) -> Any:
        rows = self.run(_GET, (key,))
        return MISSING if not rows else self._load(key, rows[0][0])

    def get(self, user_id: Key, key_name: Key) -> Any:
        """Return the stored value, or :data:`MISSING`."""
        key = record_key(user_id, key_name)
        if self._memory:
            with self._engine():
                return self._load_on_writer(key)
        for _ in range(_READ_ATTEMPTS):
            rows = self._query(_GET, (key,))
            if not rows:
                return MISSING
            try:
                return self._load(key, rows[0][0])
            except FileNotFoundError:
                continue  # replaced or deleted since we read its record: read it again
        raise StorageError(
            f"{self.location}: the side file of key_name={key_name!r} of user_id={user_id!r} "
            f"is missing from {self.folder}; restore the folder with the database file"
        )

    def contains(self, user_id: Key, key_name: Key) -> bool:
        """Whether a value is stored, without reading it."""
        return bool(self._query(_HAS, (record_key(user_id, key_name),)))

    def _write_chunks(self, key: str, value: Any, own_transaction: bool) -> None:
        write = _ValueWrite(self, key, own_transaction)
        out = ChunkWriter(write.add_chunk, self.chunk_size)
        try:
            self.codec.dump(value, out)
            write.finish(out.tail())
        except BaseException:
            write.abort()
            raise

    def _encode(self, value: Any) -> tuple[bytes, _SideFile]:
        """Serialize ``value`` for a file database: its record, and its side file if any."""
        out = _SideFile(self.folder, self.chunk_size, self._synchronous == "FULL")
        try:
            self.codec.dump(value, out)
            return out.finish(self.codec), out
        except BaseException:
            out.discard()
            raise

    def set(self, user_id: Key, key_name: Key, value: Any) -> None:
        """Store ``value``; committed when this returns."""
        key = record_key(user_id, key_name)
        if self._memory:
            with self._engine():
                self._write_chunks(key, value, own_transaction=True)
            return
        # Serialized before taking the lock: other threads write meanwhile.
        record, side_file = self._encode(value)
        with self._engine():
            try:
                self.change(_PUT, (key, record))
            except BaseException:
                side_file.discard()
                raise
            self._empty_trash()

    def update(self, user_id: Key, key_name: Key, func: Callable[[Any], Any], default: Any) -> Any:
        """Atomically store and return ``func(old value or default)``."""
        key = record_key(user_id, key_name)
        with self._engine():
            # IMMEDIATE takes the file's write lock before the read, so no other
            # process can write between our read and our write.
            self.run("BEGIN IMMEDIATE")
            side_file: _SideFile | None = None
            try:
                old = self._load_on_writer(key)
                new = func(default if old is MISSING else old)
                if self._memory:
                    self._write_chunks(key, new, own_transaction=False)
                else:
                    record, side_file = self._encode(new)
                    self.change(_PUT, (key, record))
                self.run("COMMIT")
            except BaseException:
                self.rollback()
                if side_file is not None:
                    side_file.discard()
                raise
            self._empty_trash()
        return new

    def delete(self, user_id: Key, key_name: Key) -> bool:
        """Delete one value; return whether it existed."""
        with self._engine():
            deleted = self.change(_DELETE, (record_key(user_id, key_name),), commit=True) > 0
            self._empty_trash()
        return deleted

    def keys(self, user_id: Key) -> list[Key]:
        """The user's key names, from one index range."""
        rows = self._query(_KEYS, user_range(user_id))
        return [json.loads(row[0])[1] for row in rows]

    def count(self, user_id: Key) -> int:
        """How many values the user has."""
        return int(self._query(_COUNT, user_range(user_id))[0][0])

    def delete_user(self, user_id: Key) -> int:
        """Delete the user's values and activity in one transaction."""
        with self._engine():
            self.run("BEGIN IMMEDIATE")
            try:
                deleted = self.change(_DELETE_RANGE, user_range(user_id))
                self.change(_FORGET, (encode_key(user_id),), commit=True)
            except BaseException:
                self.rollback()
                raise
            self._empty_trash()
        return deleted

    def seen(self, user_id: Key) -> float | None:
        """The user's last recorded activity, or ``None``."""
        rows = self._query(_SEEN, (encode_key(user_id),))
        return float(rows[0][0]) if rows else None

    def mark_seen(self, user_id: Key, when: float, create: bool) -> None:
        """Record activity at ``when`` (never moving it back); ``create`` adds a missing user."""
        with self._engine():
            if create:
                self.change(_MARK, (encode_key(user_id), when), commit=True)
            else:
                self.change(_REFRESH, (when, encode_key(user_id)), commit=True)

    def sessions(self) -> dict[Key, float]:
        """Every user's last recorded activity."""
        return {json.loads(user): float(seen) for user, seen in self._query(_ALL_SEEN, ())}

    def idle_users(self, cutoff: float, limit: int) -> list[Key]:
        """Up to ``limit`` users last active before ``cutoff``, oldest first (from the index)."""
        return [json.loads(row[0]) for row in self._query(_IDLE, (cutoff, limit))]

    def delete_idle_user(self, user_id: Key, cutoff: float) -> bool:
        """Delete the user if it was last active before ``cutoff``, in one transaction."""
        member = encode_key(user_id)
        with self._engine():
            self.run("BEGIN IMMEDIATE")
            try:
                # The condition is checked inside the transaction, so a write
                # racing from another process either comes first (and saves the
                # user) or finds it gone.
                self.change(_DELETE_IDLE_RANGE, (*user_range(user_id), member, cutoff))
                deleted = bool(self.change(_FORGET_IDLE, (member, cutoff), commit=True))
            except BaseException:
                self.rollback()
                raise
            self._empty_trash()
        return deleted

    def _file_size(self, name: str) -> int:
        try:
            return os.path.getsize(os.path.join(self.folder, name))
        except FileNotFoundError:
            return 0  # removed since the query: the value is gone

    def value_sizes(self, user_id: Key | None) -> list[tuple[Key, Key, int]]:
        """``(user, key, stored bytes)`` for one user's values, or everybody's."""
        if user_id is None:
            rows = self._query(_SIZES, ())
        else:
            rows = self._query(f"{_SIZES} WHERE {_RANGE}", user_range(user_id))
        return [
            (*json.loads(key), 1 + self._file_size(name) if name else int(size))
            for key, size, name in rows
        ]

    def head(self, user_id: Key, key_name: Key, limit: int) -> bytes | None:
        """The first ``limit`` bytes of the stored value, tag first, or ``None``."""
        key = record_key(user_id, key_name)
        rows = self._query(_GET, (key,))
        if not rows:
            return None
        record = bytes(rows[0][0])
        if not is_chunked(record):
            return record[:limit]
        if self._memory:
            first = self._query(_FIRST_CHUNK, (limit, key))
            return record[:1] + (bytes(first[0][0]) if first else b"")
        try:
            with open(os.path.join(self.folder, record[1:].decode()), "rb") as file:
                return record[:1] + file.read(limit)
        except FileNotFoundError:
            return record[:1]

    def users(self) -> list[Key]:
        """Every user id holding at least one value."""
        found: dict[Key, None] = {}
        for row in self._query(_ALL_KEYS, ()):
            found[json.loads(row[0])[0]] = None
        return list(found)

    def collect_garbage(self) -> int:
        """Remove side files left by writers that died before committing; return how many."""
        if self._memory or not os.path.isdir(self.folder):
            return 0
        with self._engine():
            self._trashed = True
            self._empty_trash()
        named = {row[0] for row in self._query(_ALL_FILES, ())}
        # A finished side file waits at most for the write lock (timeout) before
        # its record commits; a younger file may belong to a write about to commit.
        cutoff = time.time() - max(ORPHAN_SECONDS, 2 * self._timeout)
        removed = 0
        for entry in os.scandir(self.folder):
            if entry.name not in named and entry.stat().st_mtime < cutoff:
                with suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
        if removed:
            logger.info("%s: removed %d side files of uncommitted writes", self, removed)
        return removed

    def close(self) -> None:
        """Close every connection; remove the temporary file, if any."""
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        with self._lock:  # let a write in another thread finish first
            if self._writer is not None:
                self._writer.close()
            self._dict.close()
        if self._finalizer is not None:
            self._finalizer()

    def reopen_after_fork(self) -> None:
        """Give a forked child its own connections (see :func:`_reopen_after_fork`)."""
        if self._closed:
            return
        # Never use or close a connection made before the fork: SQLite's file
        # locks belong to the parent, and closing the copy in the child can drop
        # the child's own locks. Keep them referenced and unused instead.
        _INHERITED.append((self._dict, self._writer, self._idle))
        self._dict.conn = None  # its thread did not survive the fork
        if self._memory:
            logger.warning("%s: a forked process starts with an empty memory database", self)
        self._start()


_LIVE: weakref.WeakSet[SqliteBackend] = weakref.WeakSet()
_INHERITED: list[object] = []


def _reopen_after_fork() -> None:
    # gunicorn --preload and multiprocessing fork a process that already holds
    # an open database; sqlitedict's thread and the locks do not survive that.
    for backend in list(_LIVE):
        backend.reopen_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reopen_after_fork)
