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
:class:`~dash_database.async_concurrency.PerLoop`); the sync face, one. The pool
is this module's own, not psycopg_pool's, whose background tasks a short-lived
event loop (Flask runs each ``async def`` view on a new one) would have to start and
cancel on every call; a pool the app hands in is used as it is.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn

import psycopg
import psycopg_pool

from ... import async_concurrency
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


class AsyncServer:
    """A PostgreSQL connection pool whose errors become dash_database's.

    :param target: a ``postgresql://`` or ``postgres://`` URL, or a psycopg pool made by
        the app with ``kwargs={"autocommit": True}`` (which :meth:`aclose` leaves open).
    :param timeout: seconds to wait for a connection, or for the server to connect.
    """

    def __init__(self, target: object, timeout: float) -> None:
        self._timeout = timeout
        # This module's pools, or the app's psycopg_pool one: each has connection(timeout).
        self._pools: async_concurrency.PerLoop[Any]
        if isinstance(target, str):
            #: The database's URL, never with its password.
            self.location = redact(target)
            url = target
            self._pools = async_concurrency.PerLoop(lambda: _Pool(url, timeout), _close)
        elif isinstance(target, psycopg_pool.AsyncConnectionPool):
            self.location = pools.describe(target)
            self._pools = async_concurrency.PerLoop(lambda: target, _leave_open)
        # begin async only
        elif isinstance(target, psycopg_pool.ConnectionPool):  # the sync face's: its database
            self.location = pools.describe(target)
            conninfo = pools.conninfo(target)
            self._pools = async_concurrency.PerLoop(lambda: _Pool(conninfo, timeout), _close)
        # end async only
        else:
            raise TypeError(pools.WRONG_TARGET.format(type(target).__name__))

    @asynccontextmanager
    async def connection(self, changes: bool) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection, in autocommit, its errors turned into ours.

        :param changes: whether a statement run on it alone changes the store (a
            failure once sent may have been applied); a transaction's statements
            change nothing until :meth:`Transaction.commit`.
        """
        pool = await self._pools.get()
        try:
            async with pool.connection(timeout=self._timeout) as conn:
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

    async def query(self, statement: str, args: tuple[Any, ...] = ()) -> Rows:
        """The rows of a statement that changes nothing."""
        async with self.connection(False) as conn:
            cursor = await conn.execute(statement, args, binary=True)
            return await cursor.fetchall()

    async def change(self, statement: str, args: tuple[Any, ...] = ()) -> Rows:
        """Run one statement that changes the store, committed alone; its rows, or its
        count of rows as ``[(count,)]`` if it returns none."""
        async with self.connection(True) as conn:
            return await _rows(await conn.execute(statement, args, binary=True))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A :class:`Transaction`, committed if the block ends well, else rolled back."""
        async with self.connection(False) as conn:
            transaction = Transaction(self, conn)
            try:
                yield transaction
            except BaseException:
                await transaction.rollback()
                raise
            await transaction.commit()

    async def aclose(self) -> None:
        """Close the pools this object made; never deletes data."""
        await self._pools.aclose()


class Transaction:
    """Statements on one connection, begun on first need and committed once.

    A value larger than one chunk begins it with its first chunk, so that a value's
    chunks and its record commit together, and a writer that dies halfway leaves
    nothing behind.
    """

    def __init__(self, server: AsyncServer, conn: psycopg.AsyncConnection[Any]) -> None:
        self._server, self.conn = server, conn
        self.open = False

    async def begin(self) -> None:
        """Begin, if not begun yet."""
        if not self.open:
            await self.conn.execute("BEGIN")
            self.open = True

    async def run(self, statement: str, args: tuple[Any, ...] = ()) -> Rows:
        """A statement's rows (see :meth:`AsyncServer.change`), inside the transaction."""
        await self.begin()
        return await _rows(await self.conn.execute(statement, args, binary=True))

    async def alone(self, statement: str, args: tuple[Any, ...] = ()) -> Rows:
        """A statement that changes the store, in the transaction if it is begun; else
        committed alone, in one round trip (a failure once sent may have been applied)."""
        if self.open:
            return await self.run(statement, args)
        try:
            return await _rows(await self.conn.execute(statement, args, binary=True))
        except psycopg.Error as exc:
            self._server.fail(exc, changes=True)

    async def commit(self) -> None:
        """Commit what was run; a failure now may have been applied."""
        if self.open:
            self.open = False
            try:
                await self.conn.execute("COMMIT")
            except psycopg.Error as exc:
                self._server.fail(exc, changes=True)

    async def rollback(self) -> None:
        """Undo what was run, if the connection still works (if not, the server did)."""
        if self.open and not self.conn.broken:
            self.open = False
            await self.conn.execute("ROLLBACK")


async def _rows(cursor: psycopg.AsyncCursor[Any]) -> Rows:
    return await cursor.fetchall() if cursor.description else [(cursor.rowcount,)]


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
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = async_concurrency.Slots(MAX_CONNECTIONS)

    @asynccontextmanager
    async def connection(self, timeout: float) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection for the block, returned to the pool after it if it is still good.

        :raises TimeoutError: every connection was in use for ``timeout`` seconds.
        """
        await self._slots.acquire(timeout)
        try:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            finally:
                if conn.broken or conn.info.transaction_status != IDLE:
                    await conn.close()
                else:
                    self._idle.append(conn)
        finally:
            self._slots.release()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
        )

    async def aclose(self) -> None:
        """Close the connections not in use."""
        while self._idle:
            await self._idle.pop().close()


async def _close(pool: _Pool) -> None:
    await pool.aclose()


async def _leave_open(pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
    """A pool the app handed in is the app's to close."""
