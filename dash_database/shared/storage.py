"""Dash's shared storage (``Dash(shared_storage=...)``, Dash 4.5) over a dash_database store.

Values and messages are Dash's: JSON-compatible, encoded as Dash's own backends encode
them (msgpack), and refused at ``set`` or ``publish`` otherwise. They live apart from the
store's users: in tables or keys of their own, which ``list_users``, purges, quotas and
``copy`` never see.
"""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

from ..async_database import AsyncDashDatabase
from ..backends.redis.async_server import AsyncServer
from ..backends.sqlite.file import FileBackend
from ..database import DashDatabase
from ..exceptions import SerializationError
from . import dash_api
from .dash_api import BaseSharedStorage, SharedStorageError, SharedStorageGap, Subscription
from .polls import Poll
from .redis import RedisShared
from .sqlite import SqliteShared

#: Messages kept per topic when none is given: Dash's own default.
DEFAULT_BUFFER = 32
#: The most messages a topic may keep: each reader may ask for all of them at once.
MAX_BUFFER = 999
#: How long a blocking iteration waits per read, so that ``close`` ends it soon.
_WAIT = 0.5


class Engine(Protocol):
    """What :class:`SharedStorage` needs of an engine (:mod:`.sqlite`, :mod:`.redis`)."""

    def get(self, key: str) -> bytes | None: ...
    def set(self, key: str, value: bytes, ttl: float | None) -> None: ...
    def delete(self, key: str) -> None: ...
    def publish(self, topic: str, message: bytes, ttl: float | None) -> int: ...
    def head(self, topic: str) -> int: ...
    def read(self, topic: str, cursor: int) -> Poll: ...
    def wait(self, topic: str, cursor: int, timeout: float) -> Poll: ...
    async def aget(self, key: str) -> bytes | None: ...
    async def aset(self, key: str, value: bytes, ttl: float | None) -> None: ...
    async def adelete(self, key: str) -> None: ...
    async def apublish(self, topic: str, message: bytes, ttl: float | None) -> int: ...
    async def await_poll(self, topic: str, cursor: int, timeout: float) -> Poll: ...


def _encode(value: Any, what: str) -> bytes:
    try:
        return bytes(dash_api.msgpack.encode(value))
    except (TypeError, ValueError, OverflowError) as exc:
        raise SerializationError(
            f"{what} is a {type(value).__name__}, which shared storage cannot hold ({exc}): "
            "store JSON-compatible values (dict, list, str, int, float, bool, None)"
        ) from exc


def _check_key(key: object, argument: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"{argument} must be a str, not {type(key).__name__}")
    return key


def _check_ttl(ttl: float | None) -> float | None:
    if ttl is not None and not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
        raise ValueError(f"ttl must be None or a finite number of seconds over 0, not {ttl!r}")
    return ttl


def _check_topic_ttl(ttl: float | None) -> float | None:
    if ttl is not None and not (
        isinstance(ttl, int | float) and math.isfinite(ttl) and ttl >= dash_api.MIN_TOPIC_TTL
    ):
        raise SharedStorageError(
            f"ttl of a topic must be None or a finite {dash_api.MIN_TOPIC_TTL}s or more, "
            f"not {ttl!r}"
        )
    return ttl


class SharedStorage(BaseSharedStorage):
    """Dash's shared storage (key/value with expiry, and ordered, replayable topics) in a
    dash_database store: ``Dash(shared_storage=SharedStorage("app.sqlite3"))``.

    :param location: what ``DashDatabase`` takes: a SQLite file, shared by every worker
        of one host; a ``redis://`` URL or client, shared by many hosts; ``None`` or
        ``":memory:"``, a private temporary file of this process. Or an open
        ``DashDatabase`` or ``AsyncDashDatabase``, whose store it shares (and leaves open).
    :param buffer_size: messages kept per topic; a reader further behind gets
        ``SharedStorageGap``.
    :param options: for a location, the options of ``DashDatabase`` (``timeout``,
        ``prefix``...).
    :raises ~dash_database.exceptions.DependencyMissingError: Dash is older than 4.5.
    :raises ValueError: ``buffer_size`` is not between 1 and :data:`MAX_BUFFER`.
    """

    def __init__(
        self,
        location: Any = None,
        *,
        buffer_size: int = DEFAULT_BUFFER,
        **options: Any,
    ) -> None:
        if not isinstance(buffer_size, int) or not 1 <= buffer_size <= MAX_BUFFER:
            raise ValueError(
                f"buffer_size must be an int from 1 to {MAX_BUFFER}, not {buffer_size!r}"
            )
        if isinstance(location, AsyncDashDatabase):
            location = location.sync
        self._owned: DashDatabase | None = None
        if isinstance(location, DashDatabase):
            if options:
                raise ValueError(
                    f"options {sorted(options)} apply to a location, not an open store"
                )
            db = location
        else:
            if location == ":memory:":
                location = None  # other processes never see it either way
            db = self._owned = DashDatabase(location, **options)
        self._engine: Engine = _engine_of(db, buffer_size)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is missing or expired."""
        found = self._engine.get(_check_key(key, "key"))
        return default if found is None else dash_api.msgpack.decode(found)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Write ``value`` under ``key``, for ``ttl`` seconds (``None``: for good).

        :raises ~dash_database.exceptions.SerializationError: not JSON-compatible.
        """
        data = _encode(value, f"the value of key {key!r}")
        self._engine.set(_check_key(key, "key"), data, _check_ttl(ttl))

    def delete(self, key: str) -> None:
        """Delete ``key``, if it is there."""
        self._engine.delete(_check_key(key, "key"))

    def publish(self, topic: str, message: Any, ttl: float | None = None) -> None:
        """Append ``message`` to ``topic``; every subscriber gets it, in order.

        :param ttl: seconds (at least Dash's ``MIN_TOPIC_TTL``) after the last publish or
            read when the topic is dropped, messages and sequence both; ``None``: never.
        :raises ~dash_database.exceptions.SerializationError: not JSON-compatible.
        """
        data = _encode(message, f"a message to topic {topic!r}")
        self._engine.publish(_check_key(topic, "topic"), data, _check_topic_ttl(ttl))

    async def aget(self, key: str, default: Any = None) -> Any:
        """:meth:`get`, without blocking the event loop."""
        found = await self._engine.aget(_check_key(key, "key"))
        return default if found is None else dash_api.msgpack.decode(found)

    async def aset(self, key: str, value: Any, ttl: float | None = None) -> None:
        """:meth:`set`, without blocking the event loop."""
        data = _encode(value, f"the value of key {key!r}")
        await self._engine.aset(_check_key(key, "key"), data, _check_ttl(ttl))

    async def adelete(self, key: str) -> None:
        """:meth:`delete`, without blocking the event loop."""
        await self._engine.adelete(_check_key(key, "key"))

    async def apublish(self, topic: str, message: Any, ttl: float | None = None) -> None:
        """:meth:`publish`, without blocking the event loop."""
        data = _encode(message, f"a message to topic {topic!r}")
        await self._engine.apublish(_check_key(topic, "topic"), data, _check_topic_ttl(ttl))

    def subscribe(self, topic: str, replay_from: int | None = None) -> Subscription:
        """Subscribe to ``topic``: from now on, or after the sequence ``replay_from``."""
        topic = _check_key(topic, "topic")
        cursor = self._engine.head(topic) if replay_from is None else replay_from
        return _Subscription(self._engine, topic, cursor)

    def close(self) -> None:
        """Close the store this opened for a location (a given one stays open); the data
        stays. An engine's connections are its store's, and each event loop's async client
        closes with its loop."""
        if self._owned is not None:
            self._owned.close()


class _Subscription(Subscription):
    """A reader of one topic, from a cursor."""

    def __init__(self, engine: Engine, topic: str, cursor: int) -> None:
        self._engine, self._topic, self.cursor = engine, topic, cursor
        self._closed = threading.Event()

    def _take(self, found: Poll) -> list[tuple[int, Any]]:
        if found.gap:
            raise SharedStorageGap(
                f"messages of topic {self._topic!r} after sequence {self.cursor} are gone: "
                "the reader fell behind its buffer, or the topic started over"
            )
        first = found.last - len(found.messages) + 1
        pairs = [(first + n, dash_api.msgpack.decode(m)) for n, m in enumerate(found.messages)]
        self.cursor = found.last
        return pairs

    def poll(self, timeout: float = 0.0) -> list[tuple[int, Any]]:
        """The ``(sequence, message)`` pairs since the cursor, waiting up to ``timeout``
        seconds for one (``0``: never waits).

        :raises SharedStorageGap: some are gone.
        """
        engine = self._engine
        found = (
            engine.read(self._topic, self.cursor)
            if timeout <= 0
            else engine.wait(self._topic, self.cursor, timeout)
        )
        return self._take(found)

    def iter_with_seq(self) -> Iterator[tuple[int, Any]]:
        """Every ``(sequence, message)`` pair as it comes, until :meth:`close`."""
        try:
            while not self._closed.is_set():
                yield from self._take(self._engine.wait(self._topic, self.cursor, _WAIT))
        finally:
            self.close()

    def aiter_with_seq(self) -> AsyncIterator[tuple[int, Any]]:
        """:meth:`iter_with_seq` on the event loop: no thread waits for a message."""
        return self._pairs()

    async def _pairs(self) -> AsyncIterator[tuple[int, Any]]:
        try:
            while not self._closed.is_set():
                found = await self._engine.await_poll(self._topic, self.cursor, _WAIT)
                for pair in self._take(found):
                    yield pair
        finally:
            self.close()

    def close(self) -> None:
        """End the iteration; the topic stays."""
        self._closed.set()


def _engine_of(db: DashDatabase, buffer: int) -> Engine:
    """The shared-storage engine on the store of ``db``: a SQLite file or Redis."""
    backend: Any = db._open()
    if isinstance(backend, FileBackend):
        return SqliteShared(backend._conn, buffer)
    server = getattr(backend, "_server", None)
    if server is None:
        raise TypeError(
            f"shared storage needs a SQLite file or Redis, not {backend.location!r}: pass a "
            "location (None or ':memory:' make a private temporary file), not an open store "
            "in memory"
        )
    timeout = backend._timeout
    async_server = AsyncServer(server.client(), timeout)
    return RedisShared(server, async_server, backend._prefix, buffer, timeout)
