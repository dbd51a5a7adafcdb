# Written by tools/unasync.py from async_server.py: edit that file, then run the script.
"""One PostgreSQL database as the engine sees it: a connection pool, its name, and errors
that say what to do.

Connections are psycopg 3's, in autocommit: a single statement commits itself in
one round trip, and a change of several statements runs between an explicit
``BEGIN`` and ``COMMIT`` (see :class:`Transaction`). Nothing relies on session
state: no ``SET`` outside a transaction, no temporary tables, no ``LISTEN``, locks
only for one transaction. So the store works behind PgBouncer in transaction
pooling; psycopg's own prepared statements are the one thing such a PgBouncer
(before 1.21, or without ``max_prepared_statements``) refuses, and a pool made by
the app with ``kwargs={"prepare_threshold": None}`` turns them off.

A failure after a change was sent, before its commit was acknowledged, may have
been applied: it raises :class:`~dash_database.exceptions.OutcomeUnknownError`.
A failure before (no connection, a transaction that never reached its ``COMMIT``)
changed nothing: :class:`~dash_database.exceptions.ConnectionFailedError`.

The async face keeps one pool per running event loop (see
:class:`~dash_database.concurrency.PerLoop`); the sync face, one. The pool
is this module's own, not psycopg_pool's, whose background tasks a short-lived
event loop (Flask runs each ``def`` view on a new one) would have to start and
cancel on every call; a pool the app hands in is used as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import psycopg
import psycopg_pool

from ... import concurrency
from ...exceptions import ConnectionFailedError, OutcomeUnknownError, StorageError
from ..chunk_reads import redact
from . import pools

#: Connections one pool (one process, or one event loop) opens at most; a call beyond
#: them waits for one, up to the store's ``timeout``.
MAX_CONNECTIONS = 16
IDLE = psycopg.pq.TransactionStatus.IDLE
# What PostgreSQL answers, behind a transaction pooler, to a statement psycopg prepared on
# another server connection: it refuses the statement before running it.
_PREPARED_ELSEWHERE = (
    psycopg.errors.DuplicatePreparedStatement,
    psycopg.errors.InvalidSqlStatementName,
)

Rows = list[tuple[Any, ...]]


class Server:
    """A PostgreSQL connection pool whose errors become dash_database's.

    :param target: a ``postgresql://`` or ``postgres://`` URL, or a psycopg pool made by
        the app with ``kwargs={"autocommit": True}`` (which :meth:`close` leaves open).
    :param timeout: seconds to wait for a connection, or for the server to connect.
    """

    def __init__(self, target: object, timeout: float) -> None:
        self._timeout = timeout
        # This module's pools, or the app's psycopg_pool one: each has connection(timeout).
        self._pools: concurrency.PerLoop[Any]
        if isinstance(target, str):
            #: The database's URL, never with its password.
            self.location = redact(target)
            url = target
            self._pools = concurrency.PerLoop(lambda: _Pool(url, timeout), _close)
        elif isinstance(target, psycopg_pool.ConnectionPool):
            self.location = pools.describe(target)
            self._pools = concurrency.PerLoop(lambda: target, _leave_open)
        else:
            raise TypeError(pools.WRONG_TARGET.format(type(target).__name__))

    @contextmanager
    def connection(self, changes: bool) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection, in autocommit, its errors turned into ours.

        :param changes: whether a statement run on it alone changes the store (a
            failure once sent may have been applied); a transaction's statements
            change nothing until :meth:`Transaction.commit`.
        """
        pool = self._pools.get()
        try:
            with pool.connection(timeout=self._timeout) as conn:
                if not conn.autocommit:
                    raise ValueError(pools.NOT_AUTOCOMMIT)
                yield conn
        except (psycopg_pool.PoolTimeout, TimeoutError) as exc:
            raise ConnectionFailedError(
                f"{self.location}: no connection to PostgreSQL within timeout="
                f"{self._timeout}s ({exc}); check that the server runs and the URL and "
                "password are right. This call changed nothing."
            ) from exc
        except psycopg.Error as exc:
            self.fail(exc, changes)

    def fail(self, exc: psycopg.Error, changes: bool) -> NoReturn:
        """Raise the dash_database error that stands for ``exc``."""
        if isinstance(exc, psycopg.OperationalError) and not isinstance(
            exc, psycopg.errors.QueryCanceled | psycopg.errors.DiskFull
        ):
            if changes:
                raise OutcomeUnknownError(
                    f"{self.location}: the connection failed after the request was sent "
                    f"({exc}): the call may have been applied. Read the value back before "
                    "retrying it"
                ) from exc
            raise ConnectionFailedError(
                f"{self.location}: lost the connection to PostgreSQL ({exc}); check that "
                "the server runs. This call changed nothing."
            ) from exc
        if isinstance(exc, _PREPARED_ELSEWHERE):
            raise StorageError(
                f"{self.location}: a statement psycopg prepared is missing or there already "
                f"({exc}): a pooler such as PgBouncer in transaction pooling sits in front of "
                "PostgreSQL. Hand in a pool made with psycopg_pool.ConnectionPool(url, "
                'kwargs={"autocommit": True, "prepare_threshold": None}), or set '
                "max_prepared_statements in PgBouncer 1.21 or later. This call changed nothing."
            ) from exc
        raise StorageError(f"{self.location}: PostgreSQL refused the operation: {exc}") from exc

    def query(self, statement: str, args: tuple[Any, ...] = ()) -> Rows:
        """The rows of a statement that changes nothing."""
        with self.connection(False) as conn:
            cursor = conn.execute(statement, args, binary=True)
            return cursor.fetchall()

    def change(self, statement: str, args: tuple[Any, ...] = ()) -> Rows:
        """Run one statement that changes the store, committed alone; its rows, or its
        count of rows as ``[(count,)]`` if it returns none."""
        with self.connection(True) as conn:
            return _rows(conn.execute(statement, args, binary=True))

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A :class:`Transaction`, committed if the block ends well, else rolled back."""
        with self.connection(False) as conn:
            transaction = Transaction(self, conn)
            try:
                yield transaction
            except BaseException:
                transaction.rollback()
                raise
            transaction.commit()

    def close(self) -> None:
        """Close the pools this object made; never deletes data."""
        self._pools.close()


class Transaction:
    """Statements on one connection, begun on first need and committed once.

    A value larger than one chunk begins it with its first chunk, so that a value's
    chunks and its record commit together, and a writer that dies halfway leaves
    nothing behind.
    """

    def __init__(self, server: Server, conn: psycopg.Connection[Any]) -> None:
        self._server, self.conn = server, conn
        self.open = False

    def begin(self) -> None:
        """Begin, if not begun yet."""
        if not self.open:
            self.conn.execute("BEGIN")
            self.open = True

    def run(self, statement: str, args: tuple[Any, ...] = ()) -> Rows:
        """A statement's rows (see :meth:`Server.change`), inside the transaction."""
        self.begin()
        return _rows(self.conn.execute(statement, args, binary=True))

    def alone(self, statement: str, args: tuple[Any, ...] = ()) -> Rows:
        """A statement that changes the store, in the transaction if it is begun; else
        committed alone, in one round trip (a failure once sent may have been applied)."""
        if self.open:
            return self.run(statement, args)
        try:
            return _rows(self.conn.execute(statement, args, binary=True))
        except psycopg.Error as exc:
            self._server.fail(exc, changes=True)

    def commit(self) -> None:
        """Commit what was run; a failure now may have been applied."""
        if self.open:
            self.open = False
            try:
                self.conn.execute("COMMIT")
            except psycopg.Error as exc:
                self._server.fail(exc, changes=True)

    def rollback(self) -> None:
        """Undo what was run, if the connection still works (if not, the server did)."""
        if self.open and not self.conn.broken:
            self.open = False
            self.conn.execute("ROLLBACK")


def _rows(cursor: psycopg.Cursor[Any]) -> Rows:
    return cursor.fetchall() if cursor.description else [(cursor.rowcount,)]


class _Pool:
    """Connections to one database, kept for reuse by one process (one event loop): at most
    :data:`MAX_CONNECTIONS` at once, made on demand, dropped when broken.

    :param conninfo: where to connect.
    :param timeout: seconds to wait for the server to connect.
    """

    def __init__(self, conninfo: str, timeout: float) -> None:
        self._conninfo = conninfo
        # libpq's connect_timeout is whole seconds, and 1 means 2.
        self._connect_timeout = max(2, math.ceil(timeout))
        self._idle: list[psycopg.Connection[Any]] = []
        self._slots = concurrency.Slots(MAX_CONNECTIONS)

    @contextmanager
    def connection(self, timeout: float) -> Iterator[psycopg.Connection[Any]]:
        """A connection for the block, returned to the pool after it if it is still good.

        :raises TimeoutError: every connection was in use for ``timeout`` seconds.
        """
        self._slots.acquire(timeout)
        try:
            conn = self._idle.pop() if self._idle else self._connect()
            try:
                yield conn
            finally:
                if conn.broken or conn.info.transaction_status != IDLE:
                    conn.close()
                else:
                    self._idle.append(conn)
        finally:
            self._slots.release()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.Connection.connect(
            self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
        )

    def close(self) -> None:
        """Close the connections not in use."""
        while self._idle:
            self._idle.pop().close()


def _close(pool: _Pool) -> None:
    pool.close()


def _leave_open(pool: psycopg_pool.ConnectionPool[Any]) -> None:
    """A pool the app handed in is the app's to close."""
