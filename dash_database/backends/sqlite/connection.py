"""A SQLite file's connections: one writer under a lock, and a reader per thread.

sqlitedict queues every write to a thread of its own and raises its error in
whichever call comes next, possibly another user's; the round trip to that
thread also costs about 70 us, three quarters of a small write (measured here:
4,700 writes/s through the queue against 17,000 on a plain connection). So
the engine writes on one plain connection, used by one thread at a time, and
its errors raise in the call that caused them. In WAL mode readers never block
the writer, so each thread reads on a connection of its own: no lock to take,
which a shared pool cost every read (0.7 us of 8 here).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ...exceptions import DamagedStoreError, StorageError
from .room import disk_full
from .schema import Rows

#: Runs one statement and returns its rows: :meth:`Connection.query` (on this thread's
#: reader) or :meth:`Connection.run` (on the writer, inside a transaction).
Run = Callable[[str, tuple[Any, ...]], Rows]

logger = logging.getLogger("dash_database")

#: Pages of write-ahead log after which a commit copies them into the file.
#: SQLite's default is 1,000; each checkpoint syncs the file, and a page
#: written by many commits (the counters') is copied once per checkpoint, so
#: 4,000 (a log of up to 16 MB) makes small writes about a fifth faster.
CHECKPOINT_PAGES = 4_000
#: The log is cut back to this many bytes after a checkpoint.
LOG_LIMIT = 32 * 1024 * 1024


class _Reader(sqlite3.Connection):
    """A reading connection; a subclass only so that it can be weakly referenced."""


class _Watched:
    """The database file and its write-ahead log, each held by a descriptor to learn whether
    its name was deleted (or renamed over) since: its link count drops to 0. ``fstat`` on a
    held descriptor costs far less than ``stat`` on a path, and runs before every write.

    Closing any ordinary descriptor of the database file would drop the POSIX locks that
    SQLite holds on it for this process (other stores on the same file included), so the
    descriptors are Linux's ``O_PATH`` ones, which hold no locks to drop (elsewhere files
    are not watched: see :data:`WATCHING`).
    """

    def __init__(self, path: str) -> None:
        self._path = path
        self._file = os.open(path, _O_PATH)
        self._log: int | None = None
        self.log_seen()

    def log_seen(self) -> None:
        """Hold the log, if it exists now and is not held yet (SQLite makes it on demand)."""
        if self._log is None:
            with suppress(FileNotFoundError):
                self._log = os.open(self._path + "-wal", _O_PATH)

    def file_gone(self) -> bool:
        """Whether the database file's name no longer leads to the file opened."""
        return os.fstat(self._file).st_nlink == 0

    def log_gone(self) -> bool:
        """Whether the log held was deleted (or renamed over) since; a log not held yet is
        held from now on, if it exists."""
        if self._log is None:
            self.log_seen()
            return False
        return os.fstat(self._log).st_nlink == 0

    def forget_log(self) -> None:
        """Stop holding the log (it is gone); the next one is held once it exists."""
        if self._log is not None:
            os.close(self._log)
            self._log = None

    def close(self) -> None:
        """Close both descriptors."""
        self.forget_log()
        os.close(self._file)


_O_PATH = getattr(os, "O_PATH", 0)
#: Whether files deleted under a store are noticed: on Linux, which has ``O_PATH``.
WATCHING = bool(_O_PATH)


def on_read_only_volume(path: str) -> bool:
    """Whether the file's folder is on a file system mounted read-only."""
    folder = os.path.dirname(os.path.abspath(path))
    if not hasattr(os, "statvfs"):  # Windows: a read-only volume fails on open instead
        return False
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def _read_only_uri(path: str) -> str:
    """The URI that opens ``path`` for reading on a read-only volume.

    A file that a writer left in WAL mode with its log and index (it was killed) is read
    with them. Without a log there is nothing to recover, so SQLite is told the file is
    immutable: it cannot make the index file a WAL reader needs on such a volume.
    """
    uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro"
    if os.path.exists(path + "-wal"):
        if not os.path.exists(path + "-shm"):
            raise sqlite3.OperationalError(
                "its write-ahead log has no index file beside it, and the read-only volume "
                "cannot take one: copy the files to a writable volume to read them"
            )
        return uri
    return uri + "&immutable=1"


def hint(text: str, timeout: float | None = None) -> str:
    """What an engine error message means for the user."""
    if "locked" in text or "busy" in text:
        return f"another connection held the lock for more than timeout={timeout}s"
    if "readonly" in text or "read-only" in text:
        return "the database file or its folder is read-only"
    if "full" in text or "No space" in text:
        return "the disk or the database's size limit is full"
    return "SQLite refused the operation"


def damaged(path: str, text: str) -> DamagedStoreError:
    """The error of a file that SQLite finds damaged (``text``: what it said)."""
    return DamagedStoreError(
        f"{path}: the file is damaged ({text}); this call changed nothing. Restore it from a "
        f"backup, or save what can still be read: sqlite3 {path} .recover | sqlite3 "
        "recovered.sqlite3 (then check the recovered store with the 'check' command)"
    )


class Connection:
    """The connections of one process to one SQLite file.

    On a read-only volume every connection only reads, and a write raises a
    :class:`StorageError` that says so (see :meth:`writing`). Each write first checks
    that the file and its write-ahead log are still the ones opened (see :meth:`__enter__`).

    :param path: the database file.
    :param timeout: seconds to wait for another connection's write lock.
    :param synchronous: SQLite's ``synchronous`` for the writes.
    :raises sqlite3.DatabaseError: the file is not a database, or cannot be opened.
    """

    def __init__(self, path: str, timeout: float, synchronous: str = "NORMAL") -> None:
        self.path, self.timeout, self._synchronous = path, timeout, synchronous
        #: Whether the file is on a read-only volume, so opened for reading only.
        self.read_only = on_read_only_volume(path)
        self._lock = threading.Lock()
        self._local = threading.local()
        # Every thread's reader, for close(); a thread that ends drops its own,
        # which then closes.
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        self._closed = False
        #: Whether a trigger may have moved side-file names to the trash since
        #: the last look. A process that died between a commit and removing the
        #: files it trashed left them for whoever writes next: look once first.
        self.trashed = True
        self._trash_table: str | None = None
        # Readers opened before the file's log was replaced (see _reopen) open anew.
        self._generation = 0
        self._writer: sqlite3.Connection = self._open_writer()
        self._watched = _Watched(path) if WATCHING and not self.read_only else None

    def _open_writer(self) -> sqlite3.Connection:
        writer: sqlite3.Connection = self._connect()
        try:
            if self.read_only:  # the header is read here: a file that is not a database fails
                writer.execute("PRAGMA user_version").fetchall()
                return writer
            # SQLite reads the header and switches to WAL here, so a file that
            # is not a database, or cannot be written, fails in this call.
            self._use_wal(writer)
            for statement in (
                f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}",
                f"PRAGMA journal_size_limit = {LOG_LIMIT}",
                f"PRAGMA busy_timeout = {int(self.timeout * 1000)}",
                # sqlitedict sets synchronous=OFF; NORMAL in WAL mode loses nothing
                # on a process crash, FULL nothing on power loss.
                f"PRAGMA synchronous = {self._synchronous}",
            ):
                writer.execute(statement)
            if self._trash_table is not None:
                self._watch(writer, self._trash_table)
        except sqlite3.Error:
            writer.close()
            raise
        return writer

    def _use_wal(self, writer: sqlite3.Connection) -> None:
        # A new file is in rollback mode until its first opener switches it.
        # While another process writes it in that mode (creating its tables),
        # SQLite answers "locked" at once rather than wait, since waiting could
        # deadlock; 8 gunicorn workers opening a new file hit this 2 times in 30.
        # So wait here, up to the timeout; once in WAL, the file stays there.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                writer.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.001)

    def _connect(self, factory: type[sqlite3.Connection] = sqlite3.Connection) -> Any:
        return sqlite3.connect(
            _read_only_uri(self.path) if self.read_only else self.path,
            uri=self.read_only,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=factory,
        )

    def error(self, exc: sqlite3.Error) -> StorageError:
        """The :class:`StorageError` that stands for ``exc``, with what it means (and for a
        full disk, ``errno`` ENOSPC)."""
        text = str(exc)
        if "database or disk is full" in text:  # SQLITE_FULL, whatever the Python version
            return disk_full(self.path)
        if "malformed" in text:  # SQLITE_CORRUPT
            return damaged(self.path, text)
        return StorageError(
            f"{self.path}: {text} ({hint(text, self.timeout)}); this call changed nothing"
        )

    def refuse_write(self) -> StorageError:
        """The error of any write to a store on a read-only volume."""
        return StorageError(
            f"{self.path}: the store is on a read-only volume, so it was opened for reading "
            "only; move it to a writable volume (or remount this one read-write) to write "
            "to it. This call changed nothing"
        )

    def writing(self) -> Connection:
        """Hold the writing connection for one whole operation: ``with conn.writing():``.

        :raises StorageError: the store is on a read-only volume.
        """
        if self.read_only:
            raise self.refuse_write()
        return self

    # A class's own __enter__ and __exit__, not @contextmanager: a generator per
    # write cost 1 us of a small write's 6 us in Python.
    def __enter__(self) -> Connection:
        """Take the write lock, once the file and its log are known to be the ones opened.

        A log deleted under an open connection (a cleanup job, a bad ``rm``) takes every
        write made since with it when the process ends, while the writes still succeed;
        a deleted or replaced file, all of them. So each write first compares the files'
        identity with the one it opened: a log that is gone has its writes copied into the
        file, and the connections open anew; a file that is gone fails the write.

        :raises StorageError: the file was deleted or replaced, or the log's writes could
            not be saved; this write changed nothing.
        """
        self._lock.acquire()
        watched = self._watched
        if watched is not None and (watched.log_gone() or watched.file_gone()):
            try:
                self._files_changed(watched)
            except BaseException:
                self._lock.release()
                raise
        return self

    def _files_changed(self, watched: _Watched) -> None:
        if watched.file_gone():
            raise StorageError(
                f"{self.path}: the database file was deleted or replaced while this process "
                "had it open, so writes made now would be lost. Restore the file, or restart "
                "the process to use the new one; this call changed nothing"
            )
        try:
            # Our writer still has the deleted log open: copy what it holds into the file.
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            raise StorageError(
                f"{self.path}: its write-ahead log was deleted or replaced while open, and the "
                f"writes it held could not be copied into the file ({exc}). Stop every process "
                "that uses this store before it ends, and restore the log; this call changed "
                "nothing"
            ) from exc
        logger.warning(
            "%s: its write-ahead log was deleted or replaced while open; its writes were "
            "copied into the file, and the store opened again",
            self.path,
        )
        self._writer.close()
        watched.forget_log()
        self._writer = self._open_writer()
        watched.log_seen()
        self._generation += 1

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, or a rollback; inside :meth:`writing` only."""
        # IMMEDIATE takes the file's write lock before any read, so no other
        # process can write between our read and our write.
        self.run("BEGIN IMMEDIATE")
        try:
            yield
            self.run("COMMIT")
        except BaseException:
            if self._writer.in_transaction:  # SQLite rolls back some failures itself
                self._writer.rollback()
            raise

    def run(self, sql: str, args: tuple[Any, ...] = ()) -> Rows:
        """Run one statement on the writing connection; its error raises here."""
        try:
            return self._writer.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self.error(exc) from exc

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Run one write statement once per row of arguments, on the writing connection."""
        try:
            self._writer.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self.error(exc) from exc

    def change(self, sql: str, args: tuple[Any, ...]) -> int:
        """Run one write statement on the writing connection; return the rows it changed."""
        try:
            return int(self._writer.execute(sql, args).rowcount)
        except sqlite3.Error as exc:
            raise self.error(exc) from exc

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the file and cut the log to nothing, if the disk
        has room for it; inside :meth:`writing` only.

        A checkpoint that fails midway has grown the file by what it copied, taking room
        that deletes need: so none starts unless the volume has room for the whole file.
        """
        try:
            pages, page = (
                self._writer.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("page_count", "page_size")
            )
            grows = pages * page - os.path.getsize(self.path)
            if grows > shutil.disk_usage(self.path).free:
                logger.warning("%s: no room on the disk to checkpoint the log", self.path)
                return
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except (sqlite3.Error, OSError) as exc:
            logger.warning("%s: checkpoint on a full disk failed: %s", self.path, exc)

    def watch_trash(self, table: str) -> None:
        """Set :attr:`trashed` whenever a statement of this connection puts a name in
        ``table``: a temporary trigger (this connection's only) calls back into Python,
        so writes that trash nothing never look at the trash."""
        self._trash_table = table
        try:
            self._watch(self._writer, table)
        except sqlite3.Error as exc:
            raise self.error(exc) from exc

    def _watch(self, writer: sqlite3.Connection, table: str) -> None:
        writer.create_function("dash_database_trashed", 0, self._saw_trash)
        writer.execute(
            f'CREATE TEMP TRIGGER IF NOT EXISTS "{table}_watch" AFTER INSERT ON main."{table}" '
            "BEGIN SELECT dash_database_trashed(); END"
        )

    def _saw_trash(self) -> None:
        self.trashed = True

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> Rows:
        """Run one read statement on this thread's reading connection."""
        try:
            return self._read(sql, args)
        except sqlite3.Error as exc:
            watched = self._watched
            if watched is None or not (watched.log_gone() or watched.file_gone()):
                raise self.error(exc) from exc
        # The log was deleted under the readers too ("disk I/O error"): save its writes
        # and open anew, as the next write would (see __enter__), then read again.
        with self:
            pass
        try:
            return self._read(sql, args)
        except sqlite3.Error as exc:
            raise self.error(exc) from exc

    def _read(self, sql: str, args: tuple[Any, ...]) -> Rows:
        conn = getattr(self._local, "reader", None)
        if conn is None or self._local.generation != self._generation:
            conn = self.reader()
        return conn.execute(sql, args).fetchall()

    def reader(self) -> sqlite3.Connection:
        """This thread's reading connection, opened on its first read (and again once the
        file's log was replaced: see :meth:`__enter__`)."""
        conn: _Reader | None = getattr(self._local, "reader", None)
        if conn is not None and self._local.generation != self._generation:
            conn.close()
            conn = None
        if conn is None:
            conn = self._connect(_Reader)
            with self._readers_lock:
                if self._closed:
                    conn.close()
                    raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
                self._readers.add(conn)
            self._local.reader, self._local.generation = conn, self._generation
        return conn

    def close(self) -> None:
        """Close every connection, after a write in another thread finishes."""
        with self._readers_lock:
            self._closed = True
            readers = list(self._readers)
        for conn in readers:
            conn.close()
        with self._lock:
            self._writer.close()
            if self._watched is not None:
                self._watched.close()
