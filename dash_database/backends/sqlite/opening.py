"""Opening a store file: its path checked, its connections, its tables, triggers and
counters made sure of, and a file wiped beside its side files refused."""

from __future__ import annotations

import os
import sqlite3

from sqlitedict import SqliteDict

from ...exceptions import InvalidLocationError, StorageError
from . import counters
from . import schema as sql
from .connection import Connection, damaged, hint
from .side_files import SideFiles


def check_path(path: str) -> None:
    """Refuse a path in a missing folder, or a folder.

    :raises InvalidLocationError: the path cannot hold a store.
    """
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
    # The file's header is left for SQLite to check (see Connection): opening
    # and closing the file here would drop every POSIX lock this process holds
    # on it, and a connection that lost its shared lock can have its WAL
    # deleted under it by another process that then believes it is the last.


def connect(
    path: str, timeout: float, synchronous: str, create: bool, files: SideFiles
) -> Connection:
    """Open the file's connections and make sure its tables, triggers and counters exist.

    :param create: let sqlitedict create the values table first.
    :raises StorageError: the file is new (missing or empty), yet its side-file folder
        holds values: it was wiped, and is not opened as an empty store.
    """
    new = create and (not os.path.exists(path) or os.path.getsize(path) == 0)
    try:
        # Our own connection first: a file that is not a database fails in
        # this thread instead of killing sqlitedict's with a traceback.
        conn = Connection(path, timeout, synchronous)
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise InvalidLocationError(
                f"db_location={path!r} exists but is not a SQLite database; "
                "pass a new path or an existing dash_database file"
            ) from exc
        if "malformed" in str(exc):
            raise damaged(path, str(exc)) from exc
        message = f"{path}: {exc} ({hint(str(exc), timeout)}); this call changed nothing"
        raise StorageError(message) from exc
    try:
        if conn.read_only:
            if conn.query("PRAGMA user_version")[0][0] < sql.VERSION:
                raise StorageError(
                    f"{path}: the store is on a read-only volume, and this version of "
                    "dash_database must first upgrade its file (once): open it on a writable "
                    "volume, then move it back"
                )
            return conn
        if create:
            # sqlitedict creates the values table; its thread is then done.
            # Not autocommit, and no stack capture: neither is needed to create
            # a table, and sqlitedict's commit failures kill its thread.
            SqliteDict(
                path, tablename=sql.VALUES, autocommit=False, journal_mode="WAL", outer_stack=False
            ).close()
        counters.upgrade(conn, files)
        conn.watch_trash(sql.TRASH)
        if new and (count := files.count()):
            raise StorageError(
                f"{path} was empty or missing, but {files.folder} holds {count} of its values: "
                "the file was deleted, wiped or truncated. Restore it from a backup; or, to "
                "start an empty store here, move that folder away first"
            )
    except BaseException:
        conn.close()
        raise
    return conn
