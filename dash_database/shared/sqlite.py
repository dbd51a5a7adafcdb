"""Shared storage in a SQLite file: three tables of their own beside a store's.

Every process on one host that opens the file shares them. A publish is one write
transaction (the next sequence, the message, the buffer trimmed). A reader learns that
something may have changed without reading a table: ``PRAGMA data_version`` changes on a
connection whenever another connection commits to the file, in this process or another,
so a waiting reader looks at that number every :data:`INTERVAL` and reads the topic only
when it moved.

Times are wall-clock (:func:`~dash_database.clock.now`), since every process reads them.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable

from .. import async_concurrency, clock
from ..backends.sqlite.connection import Connection
from . import waking
from .polls import Poll, after

#: How often a waiting reader looks for a change.
INTERVAL = 0.004
#: A topic's rows live this many ttls past its last publish or read, and are renewed once
#: less than one ttl is left: a read need not write every time to keep its topic.
SLACK = 1.25
#: Expired rows are deleted by a publish or set at most this often per process.
SWEEP_SECONDS = 1.0

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS dash_database_shared_values "
    "(key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL)",
    "CREATE TABLE IF NOT EXISTS dash_database_shared_topics "
    "(topic TEXT PRIMARY KEY, seq INTEGER NOT NULL, ttl REAL, expires REAL)",
    "CREATE TABLE IF NOT EXISTS dash_database_shared_messages (topic TEXT NOT NULL, "
    "seq INTEGER NOT NULL, message BLOB NOT NULL, PRIMARY KEY (topic, seq)) WITHOUT ROWID",
]
_LIVE = "(expires IS NULL OR expires > ?)"


def _expires(ttl: float | None, now: float) -> float | None:
    return None if ttl is None else now + ttl


class SqliteShared:
    """Values and topics in the file of ``conn``.

    :param conn: the store's connections (its writer, and a reader per thread).
    :param buffer: messages kept per topic.
    """

    def __init__(self, conn: Connection, buffer: int) -> None:
        self._conn, self._buffer = conn, buffer
        self._next_sweep = 0.0
        self._versions = threading.local()
        self._tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Ticker] = (
            weakref.WeakKeyDictionary()
        )
        with conn.writing(), conn.transaction():
            for statement in _SCHEMA:
                conn.run(statement)

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, unless it is missing or expired."""
        rows = self._conn.query(
            f"SELECT value FROM dash_database_shared_values WHERE key = ? AND {_LIVE}",
            (key, clock.now()),
        )
        return bytes(rows[0][0]) if rows else None

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Write ``value`` under ``key``, for ``ttl`` seconds (``None``: for good)."""
        now = clock.now()
        with self._conn.writing(), self._conn.transaction():
            self._conn.run(
                "INSERT OR REPLACE INTO dash_database_shared_values VALUES (?, ?, ?)",
                (key, value, _expires(ttl, now)),
            )
            self._sweep(now)

    def delete(self, key: str) -> None:
        """Delete ``key``, if it is there."""
        with self._conn.writing(), self._conn.transaction():
            self._conn.run("DELETE FROM dash_database_shared_values WHERE key = ?", (key,))

    def publish(self, topic: str, message: bytes, ttl: float | None) -> int:
        """Append ``message`` to ``topic`` (started over if it expired); its sequence."""
        now, conn = clock.now(), self._conn
        with conn.writing(), conn.transaction():
            rows = conn.run(
                f"SELECT seq FROM dash_database_shared_topics WHERE topic = ? AND {_LIVE}",
                (topic, now),
            )
            if rows:
                seq = int(rows[0][0]) + 1
            else:  # new, or expired: its old messages go, and it starts at 1
                seq = 1
                conn.run("DELETE FROM dash_database_shared_messages WHERE topic = ?", (topic,))
            conn.run(
                "INSERT INTO dash_database_shared_messages VALUES (?, ?, ?)",
                (topic, seq, message),
            )
            conn.run(
                "DELETE FROM dash_database_shared_messages WHERE topic = ? AND seq <= ?",
                (topic, seq - self._buffer),
            )
            lifetime = None if ttl is None else ttl * SLACK
            conn.run(
                "INSERT OR REPLACE INTO dash_database_shared_topics VALUES (?, ?, ?, ?)",
                (topic, seq, ttl, _expires(lifetime, now)),
            )
            self._sweep(now)
        return seq

    def head(self, topic: str) -> int:
        """The sequence of ``topic``'s last message (0: none, or expired)."""
        rows = self._conn.query(
            f"SELECT seq FROM dash_database_shared_topics WHERE topic = ? AND {_LIVE}",
            (topic, clock.now()),
        )
        return int(rows[0][0]) if rows else 0

    def read(self, topic: str, cursor: int) -> Poll:
        """What ``topic`` holds after ``cursor``, now; a topic with a ttl is kept alive."""
        now = clock.now()
        rows = self._conn.query(
            "SELECT seq, ttl, expires FROM dash_database_shared_topics "
            f"WHERE topic = ? AND {_LIVE}",
            (topic, now),
        )
        if not rows:
            return after(cursor, 0, [])
        head, ttl, expires = rows[0]
        if ttl is not None and expires - now < ttl:
            self._renew(topic, head, ttl * SLACK + now)
        if cursor >= head:
            return after(cursor, head, [])
        buffered = self._conn.query(
            "SELECT seq, message FROM dash_database_shared_messages WHERE topic = ? AND seq > ? "
            "ORDER BY seq",
            (topic, cursor),
        )
        return after(cursor, head, [(int(seq), bytes(message)) for seq, message in buffered])

    def wait(self, topic: str, cursor: int, timeout: float) -> Poll:
        """What ``topic`` holds after ``cursor``, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        while True:
            self.changed()  # before the read, so that a commit after it is noticed
            found = self.read(topic, cursor)
            left = deadline - time.monotonic()
            if found.messages or found.gap or left <= 0:
                return found
            while not self.changed() and left > 0:
                time.sleep(min(INTERVAL, left))
                left = deadline - time.monotonic()

    def changed(self) -> bool:
        """Whether anything was committed to the file since this thread last asked."""
        version = self._conn.query("PRAGMA data_version")[0][0]
        seen = getattr(self._versions, "seen", None)
        self._versions.seen = version
        return bool(version != seen)

    async def aget(self, key: str) -> bytes | None:
        """:meth:`get`: a read never waits for a lock (WAL), so it runs on the loop."""
        return self.get(key)

    async def aset(self, key: str, value: bytes, ttl: float | None) -> None:
        """:meth:`set`, on a thread: a write may wait for another's lock."""
        await async_concurrency.run(self.set, key, value, ttl)

    async def adelete(self, key: str) -> None:
        """:meth:`delete`, on a thread."""
        await async_concurrency.run(self.delete, key)

    async def apublish(self, topic: str, message: bytes, ttl: float | None) -> int:
        """:meth:`publish`, on a thread."""
        return await async_concurrency.run(self.publish, topic, message, ttl)

    async def await_poll(self, topic: str, cursor: int, timeout: float) -> Poll:
        """:meth:`wait` on the event loop: each read on a thread (it may renew the topic, a
        write), and between reads the loop's one :class:`_Ticker`, which looks for a
        commit for every waiting reader at once."""
        loop = asyncio.get_running_loop()
        ticker = self._tickers.get(loop)
        if ticker is None:
            ticker = self._tickers[loop] = _Ticker(self.changed)
        deadline = loop.time() + timeout
        while True:
            since = ticker.generation  # before the read, so that a commit after it counts
            found = await async_concurrency.run(self.read, topic, cursor)
            left = deadline - loop.time()
            if found.messages or found.gap or left <= 0:
                return found
            await ticker.wait(since, left)

    def _renew(self, topic: str, head: int, expires: float) -> None:
        with self._conn.writing(), self._conn.transaction():
            self._conn.run(
                "UPDATE dash_database_shared_topics SET expires = ? WHERE topic = ? AND seq = ?",
                (expires, topic, head),
            )

    def _sweep(self, now: float) -> None:
        # Inside a write already: expired rows that nobody reads again go too.
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_SECONDS
        conn = self._conn
        conn.run("DELETE FROM dash_database_shared_values WHERE expires <= ?", (now,))
        conn.run(
            "DELETE FROM dash_database_shared_messages WHERE topic IN "
            "(SELECT topic FROM dash_database_shared_topics WHERE expires <= ?)",
            (now,),
        )
        conn.run("DELETE FROM dash_database_shared_topics WHERE expires <= ?", (now,))


class _Ticker:
    """One event loop's waiting async readers, woken together once the file changed.

    :param changed: whether anything was committed since the last call on this thread
        (the loop's), from one run of the ticker to the next.
    """

    def __init__(self, changed: Callable[[], bool]) -> None:
        self._changed = changed
        self._waiting: set[asyncio.Future[None]] = set()
        self._task: asyncio.Task[None] | None = None
        #: How many times the ticker saw a commit: a reader notes it before it reads.
        self.generation = 0

    async def wait(self, since: int, timeout: float) -> None:
        """Return once something was committed to the file after :attr:`generation` was
        ``since``, or after ``timeout`` seconds."""
        if self.generation != since:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.add(future)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            await waking.until(future, timeout)
        finally:
            self._waiting.discard(future)

    async def _run(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(INTERVAL)
                if self._changed():
                    self.generation += 1
                    waking.wake(self._waiting)
        except Exception:
            # The readers read again, and meet the failure as a clear error of their own.
            waking.wake(self._waiting)


def counts(conn: Connection) -> tuple[int, int] | None:
    """The live values and topics in the file of ``conn``; ``None`` if it never held shared
    storage. Creates nothing."""
    tables = conn.query(
        "SELECT count(*) FROM sqlite_master WHERE name IN "
        "('dash_database_shared_values', 'dash_database_shared_topics')"
    )
    if tables[0][0] < 2:
        return None
    now = clock.now()
    values, topics = (
        conn.query(f"SELECT count(*) FROM {table} WHERE {_LIVE}", (now,))[0][0]
        for table in ("dash_database_shared_values", "dash_database_shared_topics")
    )
    return int(values), int(topics)
