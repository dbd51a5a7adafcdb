"""What both faces' Redis servers share: the wire format of a command, scripts, names, errors.

:mod:`.async_server` (and its sync twin :mod:`.server`) send commands; this module
says what goes on the wire and what a failure means to the caller, once for both.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, NamedTuple, NoReturn

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from ...exceptions import (
    ConnectionFailedError,
    OutcomeUnknownError,
    StorageError,
)

#: The connections that one event loop's client opens at most; a call beyond them
#: waits for one (up to the store's ``timeout``).
MAX_ASYNC_CONNECTIONS = 64
#: Arguments larger than this many bytes are sent without being copied (see :func:`pack`).
LARGE = 6000


class Script(NamedTuple):
    """A Lua script, run by its SHA-1 (``EVALSHA``), loaded when the server lacks it."""

    text: str
    sha: str

    @classmethod
    def of(cls, text: str) -> Script:
        """The script of ``text``."""
        return cls(text, hashlib.sha1(text.encode()).hexdigest())


def describe(client: redis.Redis | redis.asyncio.Redis) -> str:
    """Where a client given by the app connects, never with its password."""
    kwargs = client.get_connection_kwargs()
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"


def decodes(client: redis.Redis | redis.asyncio.Redis) -> bool:
    """Whether a client given by the app decodes replies, which the engine cannot read."""
    return bool(client.get_connection_kwargs().get("decode_responses"))


def client_for(url: str, timeout: float) -> redis.Redis:
    """A client of the sync face: a connection per thread calling at once, never a retry
    (see :mod:`.server`)."""
    return redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def async_client_for(url: str, timeout: float) -> redis.asyncio.Redis:
    """A client of the async face, for one event loop. Tasks are cheap and connections are
    not: beyond :data:`MAX_ASYNC_CONNECTIONS`, a call waits for a free one. Its sockets have
    no timeout of their own: redis-py would bound each command with ``asyncio.wait_for``,
    which costs a small call a quarter of its time; the server bounds each call instead
    (``async_concurrency.Deadline`` and ``within``)."""
    pool = _TakingTurns.from_url(
        url,
        max_connections=MAX_ASYNC_CONNECTIONS,
        turn_timeout=timeout,
        socket_timeout=None,
        socket_connect_timeout=timeout,
        retry=AsyncRetry(NoBackoff(), 0),
    )
    return redis.asyncio.Redis.from_pool(pool)  # which closes the pool with the client


class _BoundedConnect(redis.asyncio.connection.AbstractConnection):
    """A connection whose connecting (the TCP connection, then redis-py's handshake with the
    server) gives up after ``handshake_timeout`` seconds."""

    def __init__(self, *args: Any, handshake_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handshake_timeout = handshake_timeout

    async def connect(self) -> None:
        """Connect, unless connected already, within the timeout."""
        if self.is_connected:
            return
        try:
            await asyncio.wait_for(super().connect(), self._handshake_timeout)  # type: ignore[no-untyped-call]
        except asyncio.TimeoutError:
            await self.disconnect()
            raise redis.TimeoutError(
                f"no answer to the handshake within timeout={self._handshake_timeout}s"
            ) from None


class _TakingTurns(redis.asyncio.ConnectionPool):
    """An event loop's connection pool in which a call past ``max_connections`` waits for a
    free connection, up to ``turn_timeout`` seconds. (redis-py's ``BlockingConnectionPool``
    waits through ``asyncio.wait_for`` on every call, which costs a small call more than
    the rest of its work; here, only a call that must wait pays for it.)"""

    def __init__(self, *args: Any, turn_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turns = asyncio.Semaphore(self.max_connections)
        self._turn_timeout = turn_timeout
        # Its connections' sockets have no timeout: bound their handshake with the server.
        plain = self.connection_class
        self.connection_class = type(f"Bounded{plain.__name__}", (_BoundedConnect, plain), {})
        self.connection_kwargs["handshake_timeout"] = turn_timeout

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        """A free connection, once there is one."""
        if self._turns.locked():
            try:
                await asyncio.wait_for(self._turns.acquire(), self._turn_timeout)
            except asyncio.TimeoutError:
                raise redis.ConnectionError(
                    f"all {self.max_connections} connections stayed busy for {self._turn_timeout}s"
                ) from None
        else:
            await self._turns.acquire()
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except BaseException:
            self._turns.release()
            raise

    async def release(self, connection: Any) -> None:
        """Give ``connection`` back, and its turn to the next waiting call."""
        try:
            await super().release(connection)
        finally:
            self._turns.release()


def asyncio_twin(client: redis.Redis) -> redis.asyncio.Redis:
    """A ``redis.asyncio`` client to the server of a sync client, with its options: an app
    of 2.3 may hand ``AsyncDashDatabase`` a ``redis.Redis``."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs.pop("retry", None)  # a sync Retry; the async connection makes its own
    connection_class = getattr(redis.asyncio.connection, pool.connection_class.__name__)
    twin = _TakingTurns(
        connection_class=connection_class,
        max_connections=MAX_ASYNC_CONNECTIONS,
        turn_timeout=kwargs.get("socket_timeout") or 30.0,
        **kwargs,
    )
    return redis.asyncio.Redis.from_pool(twin)


def glob_escape(text: str) -> str:
    """``text`` with the characters of Redis's glob patterns escaped."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


def pack(command: tuple[str | bytes | int | float, ...]) -> list[bytes]:
    """``command`` in the Redis protocol, as buffers to send in turn.

    redis-py's packer takes any argument type and checks each; a write here sends
    a dozen arguments of four types, so this plainer one is cheaper. An argument
    above :data:`LARGE` bytes is sent as its own buffer, never copied.
    """
    buffers: list[bytes] = []
    small = bytearray(b"*%d\r\n" % len(command))
    for argument in command:
        if type(argument) is bytes:
            data = argument
        elif type(argument) is str:
            data = argument.encode()
        else:
            data = repr(argument).encode()
        small += b"$%d\r\n" % len(data)
        if len(data) < LARGE:
            small += data
            small += b"\r\n"
        else:
            buffers += [bytes(small), data]
            small = bytearray(b"\r\n")
    buffers.append(bytes(small))
    return buffers


def fail(location: str, exc: redis.RedisError | TimeoutError) -> NoReturn:
    """Raise the dash_database error that stands for ``exc``, raised before a request left
    (or by a request that changes nothing)."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, TimeoutError)):
        raise ConnectionFailedError(
            f"{location}: cannot reach the Redis server ({exc}); check that it runs "
            "and the URL and password are right. This call changed nothing."
        ) from exc
    raise StorageError(f"{location}: Redis refused the operation: {exc}") from exc


def outcome_unknown(location: str, exc: BaseException) -> OutcomeUnknownError:
    """The error for a connection that failed after a write was sent."""
    return OutcomeUnknownError(
        f"{location}: the connection failed after the request was sent ({exc}): the call "
        "may have been applied. Read the value back before retrying it"
    )
