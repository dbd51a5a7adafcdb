"""The file engine: one SQLite file shared by every thread and process that opens it.

The file is created by sqlitedict and stays a plain sqlitedict database (see
:mod:`.schema`). Writes go through :class:`~.connection.Connection`, large
values to :class:`~.side_files.SideFiles`; this module only puts them together.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from ... import forks, signals
from ...activity import Touch
from ...exceptions import StorageError
from ...keys import MISSING, Key, Where, encode_key
from ...quotas import Quotas
from ...records import is_chunked, split, stored_size
from ...serialization import Codec, Fill, copy_pieces
from ...streams import CHUNK_SIZE
from ..base import Backend, Count, RawValue, Seen, T, ValueSize
from . import counters, opening, user_changes
from . import schema as sql
from .connection import Connection, Run
from .room import Reserve
from .side_files import SideFiles, SideFileWriter

logger = logging.getLogger("dash_database")

_READ_ATTEMPTS = 5


def _remove_temp_dir(path: str, owner_pid: int) -> None:
    # A forked worker inherits the finalizer; only the creating process cleans up.
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)
        signals.forget(path)
        logger.debug("removed the temporary database folder %s", path)


def _is_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write refused for want of disk."""
    return isinstance(exc, StorageError) and exc.errno == errno.ENOSPC


def _sizes(rows: sql.Rows, files: SideFiles) -> list[ValueSize]:
    """``(user, key, stored bytes)`` of rows of :data:`.schema.SIZES`; ``None`` where a side
    file is missing, or is not the size its record was written with (truncated, swapped)."""
    sizes: list[ValueSize] = []
    for key, length, name, recorded in rows:
        stored: int | None = length
        if name is not None:
            # Such a record is a head and a name; the value, the head and the file.
            stored = files.size(name)
            if stored is not None:
                stored = stored_size(length - len(name), stored)
            if stored != recorded:
                stored = None
        sizes.append((*json.loads(key), stored))
    return sizes


class FileBackend(Backend):
    """Values in a SQLite file, created by sqlitedict.

    :param location: a file path, or ``None`` for a private temporary file
        removed on close and at interpreter exit.
    :param codec: the serializer (see :class:`~..base.Engine` for it, ``quotas`` and
        ``chunk_size``).
    :param timeout: seconds to wait for another connection's write lock.
    :param durability: ``"normal"`` (survives a process crash) or ``"full"``
        (also survives power loss, with an fsync per commit).
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | None,
        codec: Codec,
        quotas: Quotas | None = None,
        chunk_size: int = CHUNK_SIZE,
        *,
        timeout: float,
        durability: str,
    ) -> None:
        super().__init__(codec, quotas, chunk_size)
        self._timeout = timeout
        self._synchronous = sql.check_durability(durability)
        self._finalizer: weakref.finalize[[str, int], FileBackend] | None = None
        if location is None:
            # mkdtemp makes the folder 0700; SQLite gives its side files the
            # mode of the database file, so they stay private too.
            folder = tempfile.mkdtemp(prefix="dash_database-")
            path = os.path.join(folder, "dash_database.sqlite3")
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            self._finalizer = weakref.finalize(self, _remove_temp_dir, folder, os.getpid())
            signals.remove_on_signal(folder)
        else:
            path = os.fspath(location)
            opening.check_path(path)
        self.location = path
        self.files = SideFiles(os.path.abspath(path) + "-values", timeout)
        self._closed = False
        self._conn = opening.connect(path, timeout, self._synchronous, True, self.files)
        #: Disk kept for deletes on a full disk (none on a read-only volume).
        self.reserve = None if self._conn.read_only else Reserve(path)
        forks.register(self)
        logger.debug("opened %s (synchronous=%s)", path, self._synchronous)

    def _load(self, row: sql.Row, user_id: Key, key_name: Key, codec: Codec | None = None) -> Any:
        """The value of a row of :data:`.schema.GET` (a record and its stored bytes): inline,
        or in the side file it names.

        :raises FileNotFoundError: the side file was removed after ``record`` was read.
        :raises DeserializationError: the side file is not the size it was written with.
        """
        codec, (record, stored) = codec or self.codec, row
        if not is_chunked(record):
            return codec.load_record(record, (user_id, key_name))
        head, name = split(record)
        with self.files.open(name, user_id, key_name, stored - len(head)) as file:
            return codec.load_file(head, file, (user_id, key_name))

    def _read(self, user_id: Key, touch: Touch | None, read: Callable[[Run], T]) -> Seen[T]:
        """``read`` (of the file, through a query runner), with ``touch`` applied first: when
        the user's stored activity needs nothing, a plain read; else in one write transaction.
        A touch comes once per refresh interval per user and process (see ``Activity``)."""
        if touch is None:
            return read(self._conn.query), None
        rows = self._conn.query(sql.SEEN, (encode_key(user_id),))
        seen: float | None = rows[0][0] if rows else None
        drop, store = touch.outcome(seen)
        if self._conn.read_only and drop:
            return read(lambda *_: []), None  # idle past expiry: gone, though not deleted
        if self._conn.read_only or (not drop and store is None):
            return read(self._conn.query), seen
        with self._conn.writing() as conn:
            with conn.transaction():
                seen = user_changes.touch(conn, user_id, touch)
                result = read(conn.run)
            self.files.empty_trash(conn)
        return result, seen

    def get(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[Any]:
        """The stored value, or :data:`~dash_database.keys.MISSING`."""
        key = sql.record_key(user_id, key_name)
        for _ in range(_READ_ATTEMPTS):
            if touch is None:  # the path of most reads: one query
                rows, seen = self._conn.query(sql.GET, (key,)), None
            else:
                rows, seen = self._read(user_id, touch, lambda run: run(sql.GET, (key,)))
            try:
                return (self._load(rows[0], user_id, key_name) if rows else MISSING), seen
            except FileNotFoundError:
                touch = None  # replaced or deleted since we read its record: read it again
        raise StorageError(
            f"{self.location}: the side file of key_name={key_name!r} of user_id={user_id!r} "
            f"is missing from {self.files.folder}; restore the folder with the database file"
        )

    def contains(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Whether a value is stored, without reading it."""
        key = sql.record_key(user_id, key_name)
        return self._read(user_id, touch, lambda run: bool(run(sql.HAS, (key,))))

    def keys(self, user_id: Key, touch: Touch | None) -> Seen[list[Key]]:
        """The user's key names, from one index range."""
        span = sql.user_range(user_id)
        return self._read(
            user_id, touch, lambda run: [json.loads(row[0])[1] for row in run(sql.KEYS, span)]
        )

    def _encode(self, fill: Fill) -> tuple[bytes, SideFileWriter]:
        """The record of what ``fill`` writes, and its writer (its side file and size).

        :raises StorageError: the store is on a read-only volume (before any side file).
        """
        if self._conn.read_only:
            raise self._conn.refuse_write()
        self._check_room()
        out = self.files.writer(self.chunk_size, self._synchronous == "FULL")
        try:
            return out.finish(fill(out)), out
        except BaseException as exc:
            out.discard()
            if _is_full(exc):
                with self._conn.writing():
                    self._make_room()
            raise

    def _check_room(self) -> None:
        """Before a write that adds data: refuse it while the disk is full (see :mod:`.room`)."""
        if self.reserve is not None:
            self.reserve.check_room(self.location)

    def _make_room(self) -> None:
        """The disk is full: give up the reserve, and cut the log back; inside ``writing``."""
        if self.reserve is not None:
            self.reserve.release()
            self._conn.checkpoint()

    def _deleting(self, delete: Callable[[], T]) -> T:
        """Run ``delete``, a change that frees data, again once if the disk was full: with
        the reserve released and the log cut back, it has room."""
        try:
            return delete()
        except StorageError as exc:
            if not _is_full(exc) or self.reserve is None:
                raise
            with self._conn.writing():
                self._make_room()
            return delete()

    def _put(self, where: Where, record: bytes, out: SideFileWriter, touch: Touch | None) -> None:
        """Write ``record``, made by ``out`` (see :meth:`_encode`), and ``touch``'s activity."""
        with self._conn.writing() as conn:
            try:
                counters.put(conn, self.quotas, *where, record, out.size, touch)
            except BaseException as exc:
                out.discard()
                if _is_full(exc):
                    self._make_room()
                raise
            self.files.empty_trash(conn)

    def set(self, user_id: Key, key_name: Key, value: Any, touch: Touch | None) -> float | None:
        """Store ``value``; committed when this returns."""
        # Serialized before taking the lock: other threads write meanwhile.
        where = (user_id, key_name)
        record, out = self._encode(lambda out: self.codec.dump(value, out, where))
        self._put(where, record, out, touch)
        # A write stores at least its time (see Touch.outcome): no read back needed.
        return None if touch is None else touch.now

    def write_raw(self, user_id: Key, key_name: Key, head: bytes, pieces: Iterable[bytes]) -> None:
        """Store a record read elsewhere, as :meth:`set` stores a value."""
        record, out = self._encode(copy_pieces(head, pieces))
        self._put((user_id, key_name), record, out, None)

    def read_raw(self, user_id: Key, key_name: Key) -> RawValue | None:
        """The value as stored, never decoded; ``None`` if there is none."""
        rows = self._conn.query(sql.GET, (sql.record_key(user_id, key_name),))
        if not rows:
            return None
        record, stored = bytes(rows[0][0]), rows[0][1]
        head, body = split(record)
        if not is_chunked(record):
            return head, iter([body])
        return head, self.files.pieces(
            body, (user_id, key_name), self.chunk_size, stored - len(head)
        )

    def _replace(
        self,
        conn: Connection,
        where: Where,
        codec: Codec,
        func: Callable[[Any], Any],
        default: Any,
        side_files: list[SideFileWriter],
    ) -> tuple[bool, Any]:
        """Store ``func(old value or default)``, both through ``codec``, inside a
        transaction; whether there was an old value, and the new one."""
        user_id, key_name = where
        key = sql.record_key(user_id, key_name)
        rows = conn.run(sql.GET, (key,))
        if not rows and default is MISSING:
            return False, MISSING  # only a stored value is replaced
        new = func(self._load(rows[0], user_id, key_name, codec) if rows else default)
        record, side_file = self._encode(lambda out: codec.dump(new, out, where))
        side_files.append(side_file)
        if self.quotas is not None:
            counters.check(conn, self.quotas, user_id, key_name, side_file.size)
        conn.change(sql.PUT, (key, record, encode_key(user_id), side_file.size))
        return bool(rows), new

    def _rewrite(
        self,
        where: Where,
        touch: Touch | None,
        codec: Codec,
        func: Callable[[Any], Any],
        default: Any,
    ) -> tuple[bool, Any, float | None]:
        """:meth:`_replace` in one write transaction, with ``touch`` applied in it."""
        side_files: list[SideFileWriter] = []
        self._check_room()
        with self._conn.writing() as conn:
            try:
                with conn.transaction():
                    seen = None if touch is None else user_changes.touch(conn, where[0], touch)
                    existed, new = self._replace(conn, where, codec, func, default, side_files)
            except BaseException as exc:
                for side_file in side_files:
                    side_file.discard()
                if _is_full(exc):
                    self._make_room()
                raise
            self.files.empty_trash(conn)
        return existed, new, seen

    def update(
        self,
        user_id: Key,
        key_name: Key,
        func: Callable[[Any], Any],
        default: Any,
        touch: Touch | None,
    ) -> Seen[Any]:
        """Atomically store and return ``func(old value or default)``."""
        _, new, seen = self._rewrite((user_id, key_name), touch, self.codec, func, default)
        return new, seen

    def recode(self, user_id: Key, key_name: Key, codec: Codec, func: Callable[[Any], Any]) -> bool:
        """Atomically replace a stored value with ``func(old)``, through ``codec``."""
        return self._rewrite((user_id, key_name), None, codec, func, MISSING)[0]

    def delete(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Delete one value; whether it existed."""
        key = sql.record_key(user_id, key_name)

        def delete() -> Seen[bool]:
            seen = None
            with self._conn.writing() as conn:
                if touch is None:
                    deleted = conn.change(sql.DELETE, (key,)) > 0
                else:
                    with conn.transaction():
                        seen = user_changes.touch(conn, user_id, touch)
                        deleted = conn.change(sql.DELETE, (key,)) > 0
                self.files.empty_trash(conn)
            return deleted, seen

        return self._deleting(delete)

    def _drop_user(self, user_id: Key, cutoff: float | None) -> int:
        """Delete the user's values and activity at once (with a cutoff: only if idle)."""

        def drop() -> int:
            with self._conn.writing() as conn:
                deleted = user_changes.drop(conn, user_id, cutoff)
                self.files.empty_trash(conn)
            return deleted

        return self._deleting(drop)

    def rename_user(self, old_id: Key, new_id: Key) -> int:
        """Move the user's records, counters and activity to ``new_id`` in one transaction
        (which adds no data: it runs on a full disk as deletes do)."""

        def rename() -> int:
            with self._conn.writing() as conn:
                return user_changes.rename(conn, old_id, new_id, self.codec)

        return self._deleting(rename)

    def delete_user(self, user_id: Key) -> int:
        """Delete the user's values and activity in one transaction."""
        return self._drop_user(user_id, cutoff=None)

    def delete_idle_user(self, user_id: Key, cutoff: float) -> bool:
        """Delete the user if it was last active before ``cutoff``, in one transaction."""
        return bool(self._drop_user(user_id, cutoff))

    def seen(self, user_id: Key) -> float | None:
        """The user's last recorded activity, or ``None``."""
        rows = self._conn.query(sql.SEEN, (encode_key(user_id),))
        return float(rows[0][0]) if rows else None

    def mark_seen(self, user_id: Key, when: float, create: bool) -> None:
        """Record activity at ``when`` (never moving it back); ``create`` adds a missing user."""
        member = encode_key(user_id)
        with self._conn.writing() as conn:
            if create:
                conn.change(sql.MARK, (member, when))
            else:
                conn.change(sql.REFRESH, (when, member))

    def sessions(self) -> dict[Key, float]:
        """Every user's last recorded activity."""
        return {json.loads(user): float(seen) for user, seen in self._conn.query(sql.ALL_SEEN)}

    def idle_users(self, cutoff: float, limit: int) -> list[Key]:
        """Up to ``limit`` users last active before ``cutoff``, oldest first (from the index)."""
        return [json.loads(row[0]) for row in self._conn.query(sql.IDLE, (cutoff, limit))]

    def value_sizes(self, user_id: Key | None) -> list[ValueSize]:
        """``(user, key, stored bytes)`` for one user's values, or everybody's."""
        if user_id is None:
            return _sizes(self._conn.query(sql.SIZES), self.files)
        return _sizes(self._conn.query(sql.USER_SIZES, sql.user_range(user_id)), self.files)

    def head(self, user_id: Key, key_name: Key, limit: int) -> bytes | None:
        """The first ``limit`` bytes of the stored value, tag first, or ``None``."""
        rows = self._conn.query(sql.GET, (sql.record_key(user_id, key_name),))
        return None if not rows else self.files.head(bytes(rows[0][0]), user_id, key_name, limit)

    def users(self) -> list[Key]:
        """Every user id holding at least one value, from the counters."""
        return [json.loads(row[0]) for row in self._conn.query(sql.ALL_USERS)]

    def counts(self, user_id: Key | None) -> dict[Key, Count]:
        """``(values, stored bytes)`` of one user, or of every user, from the counters."""
        args = () if user_id is None else (encode_key(user_id),)
        rows = self._conn.query(sql.ALL_COUNTS if user_id is None else sql.USER_COUNT, args)
        return {json.loads(user): (keys, stored) for user, keys, stored in rows}

    def recount(self) -> None:
        """Rebuild every counter from the records' sizes, in one transaction."""
        with self._conn.writing() as conn, conn.transaction():
            counters.recount(conn)

    def check_storage(self) -> list[str]:
        """What SQLite's ``quick_check`` finds wrong with the file (a damaged page, an index
        that disagrees with its table), one line each."""
        try:
            lines = [str(row[0]) for row in self._conn.query("PRAGMA quick_check")]
        except StorageError as exc:
            return [str(exc)]
        return [] if lines == ["ok"] else lines

    def collect_garbage(self) -> int:
        """Remove side files left by writers that died before committing; return how many."""
        return self.files.collect_garbage(self._conn)

    def close(self) -> None:
        """Close every connection; remove the temporary file, if any."""
        self._closed = True
        self._conn.close()
        if self._finalizer is not None:
            self._finalizer()

    def after_fork_in_child(self) -> None:
        """Give a forked child connections of its own (see :mod:`dash_database.forks`)."""
        if self._closed:
            return
        forks.keep(self._conn)
        self._conn = opening.connect(
            self.location, self._timeout, self._synchronous, False, self.files
        )
