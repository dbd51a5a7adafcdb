"""Large values beside a SQLite file: one side file per value in ``<database>-values/``.

Writing a large value through SQLite would copy it into the WAL and again into
the database (8x a plain pickle dump for 400 MB, measured here). Instead it is
streamed to its own file before its record, which names the file, is
committed. A replaced or deleted record moves its file name to a trash table
in the same statement (a trigger, see :mod:`.schema`), and the file is removed
after the commit, so a crash at any point leaves every committed value whole;
only a file whose record never committed can be left over, and
:meth:`SideFiles.collect_garbage` removes those.

A name read from the database is untrusted: it is used only if this module
could have made it (32 lowercase hex digits), so nothing outside the folder is
ever read, written or deleted, and links are never followed.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any, BinaryIO

from ...exceptions import DeserializationError, StorageError
from ...keys import Key, Where
from ...records import continued, is_chunked, split, stored_size
from .connection import Connection, hint
from .room import disk_full
from .schema import ALL_FILES, TRASHED, UNTRASH

logger = logging.getLogger("dash_database")

#: A side file with no record this much older than now (or twice the timeout,
#: if longer) is a leftover of a writer that died before committing.
ORPHAN_SECONDS = 3600
_NAME = re.compile(r"[0-9a-f]{32}")
# O_NOFOLLOW: a link planted in the folder must not lead a read outside it.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)


def is_side_file_name(name: object) -> bool:
    """Whether ``name`` is one that :class:`SideFileWriter` could have made."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


class SideFileWriter:
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
        #: The value's stored bytes: its body so far, and its record's head once finished.
        self.size = 0

    def _fail(self, exc: OSError) -> StorageError:
        where = self.path or self._folder
        if exc.errno == errno.ENOSPC:
            return disk_full(where)
        message = f"{where}: {exc.strerror or exc} ({hint(str(exc))}); this call changed nothing"
        return StorageError(exc.errno, message) if exc.errno else StorageError(message)

    def write(self, data: Any) -> int:
        """Append ``data`` (any bytes-like object); return its length."""
        view = memoryview(data).cast("B")
        self.size += len(view)
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

    def finish(self, head: bytes) -> bytes:
        """Close the side file, if any; return the record that stands for the value, whose
        head is ``head`` (see :mod:`dash_database.records`)."""
        self.size = stored_size(len(head), self.size)
        if self._file is None:
            return head + self._buf
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
        return continued(head) + os.path.basename(self.path).encode()

    def discard(self) -> None:
        """Remove the side file of a value whose record was not committed."""
        if self._file is None or self.path is None:
            return
        with suppress(OSError):  # a full disk can fail the close's flush too
            self._file.close()
        with suppress(FileNotFoundError):
            os.unlink(self.path)


class SideFiles:
    """The folder of one database's side files.

    :param folder: ``<database>-values``.
    :param timeout: the database's lock timeout (an orphan is at least twice as old).
    """

    def __init__(self, folder: str, timeout: float) -> None:
        self.folder, self._timeout = folder, timeout

    def count(self) -> int:
        """How many side files the folder holds (0 without a folder)."""
        try:
            return sum(is_side_file_name(name) for name in os.listdir(self.folder))
        except FileNotFoundError:
            return 0

    def writer(self, limit: int, sync: bool) -> SideFileWriter:
        """A new writer of one value into this folder."""
        return SideFileWriter(self.folder, limit, sync)

    def path(self, name: bytes | str, user_id: Key, key_name: Key) -> str:
        """The path of the side file a record names.

        :raises DeserializationError: the name is not one this library makes.
        """
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        if not is_side_file_name(text):
            raise DeserializationError(
                f"the record of key_name={key_name!r} of user_id={user_id!r} names the side "
                f"file {text[:80]!r}, which dash_database cannot have made: the record is "
                "damaged or forged, and was not used. Delete the value"
            )
        return os.path.join(self.folder, text)

    def open(self, name: bytes, user_id: Key, key_name: Key, size: int | None = None) -> BinaryIO:
        """Open a record's side file for reading, never through a link.

        :param size: the bytes the file was written with, if known: a file of another size
            was cut short, replaced or swapped, and is refused.
        :raises FileNotFoundError: the file is gone (replaced since its record was read).
        :raises DeserializationError: the file is not ``size`` bytes.
        """
        path = self.path(name, user_id, key_name)
        try:
            file = os.fdopen(os.open(path, _OPEN_FLAGS), "rb")
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError(f"{path}: {exc}; restore the folder with the database") from exc
        found = os.fstat(file.fileno()).st_size
        if size is not None and found != size:
            file.close()
            raise DeserializationError(
                f"the side file {path} of key_name={key_name!r} of user_id={user_id!r} holds "
                f"{found} bytes, where its value was written with {size}: it was cut short, "
                "replaced or swapped. Delete the value, or restore the folder from a backup"
            )
        return file

    def head(self, record: bytes, user_id: Key, key_name: Key, limit: int) -> bytes:
        """A record's head (inline form) and the first ``limit`` bytes of its body, inline or
        in its file."""
        head, body = split(record)
        if not is_chunked(record):
            return head + body[:limit]
        try:
            with self.open(body, user_id, key_name) as file:
                return head + file.read(limit)
        except FileNotFoundError:
            return head

    def pieces(self, name: bytes, where: Where, size: int, stored: int) -> Iterator[bytes]:
        """The bytes of a record's side file, ``size`` at a time (opened now, read as asked).

        :param stored: the bytes the file was written with (see :meth:`open`).
        """
        file = self.open(name, *where, stored)

        def read() -> Iterator[bytes]:
            with file:
                while piece := file.read(size):
                    yield piece

        return read()

    def size(self, name: str | None) -> int | None:
        """The bytes of a named side file, or ``None`` if it is missing or its name is bad."""
        if not is_side_file_name(name):
            return None
        assert name is not None
        try:
            return os.stat(os.path.join(self.folder, name), follow_symlinks=False).st_size
        except OSError:
            return None

    def empty_trash(self, conn: Connection) -> None:
        """Remove the side files of records deleted or replaced by committed writes.

        The caller holds ``conn``'s writing lock. This runs inside other users'
        calls, so it never raises: a bad name is logged once and dropped.
        """
        if not conn.trashed:
            return
        conn.trashed = False
        try:
            for (name,) in conn.run(TRASHED):
                if not is_side_file_name(name):
                    logger.warning("%s: ignored a damaged side-file name %.80r", self.folder, name)
                else:
                    try:
                        os.unlink(os.path.join(self.folder, name))
                    except FileNotFoundError:
                        pass  # another process got there first
                    except OSError as exc:
                        # The write itself committed; the file waits for the next try.
                        logger.warning("%s: cannot remove side file %s: %s", self.folder, name, exc)
                        continue
                conn.change(UNTRASH, (name,))
        except StorageError as exc:
            logger.warning("%s: side files were not cleaned up yet: %s", self.folder, exc)

    def collect_garbage(self, conn: Connection) -> int:
        """Remove side files of writes that died before committing; return how many.

        :raises StorageError: the folder cannot be listed.
        """
        if not os.path.isdir(self.folder):
            return 0
        with conn.writing():
            conn.trashed = True
            self.empty_trash(conn)
        named = {row[0] for row in conn.query(ALL_FILES)}
        # A finished side file waits at most for the write lock (timeout) before
        # its record commits; a younger file may belong to a write about to commit.
        cutoff = time.time() - max(ORPHAN_SECONDS, 2 * self._timeout)
        removed = 0
        try:
            entries = list(os.scandir(self.folder))
        except OSError as exc:
            raise StorageError(f"{self.folder}: cannot list side files: {exc}") from exc
        for entry in entries:
            if not is_side_file_name(entry.name) or entry.name in named:
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue  # another process removed or replaced it while we looked
            except OSError as exc:
                logger.warning("%s: cannot remove side file %s: %s", self.folder, entry.name, exc)
        if removed:
            logger.info("%s: removed %d side files of uncommitted writes", self.folder, removed)
        return removed
