"""One Redis server as the engine sees it: a client, its name, and errors that say what to do.

A write sent to the server may be applied even if its reply is lost on the way
back. So writes (:meth:`Server.run`, :meth:`Server.write`) are sent on a pooled
connection driven here, which tells the two cases apart: a failure before the
request left (not connected, not sent whole) changed nothing; one after it may
have been applied, and raises :class:`~dash_database.exceptions.OutcomeUnknownError`.
Nothing is ever sent again behind the caller's back: redis-py's automatic retry
(whose default has changed between versions) is off for the clients made here,
and never used for writes on a client the app hands in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from ...exceptions import ConnectionFailedError, OutcomeUnknownError, StorageError

logger = logging.getLogger("dash_database")

#: Arguments larger than this many bytes are sent without being copied (see :func:`pack`).
LARGE = 6000


def redact(url: str) -> str:
    """``url`` without its password, for messages and ``repr``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def pack(command: tuple[str | bytes | int | float, ...]) -> list[bytes]:
    """``command`` in the Redis protocol, as buffers to send in turn.

    redis-py's packer takes any argument type and checks each; a write here sends
    a dozen arguments of four types, so this plainer one is cheaper. An argument
    above :data:`LARGE` bytes is sent as its own buffer, never copied.
    """
    buffers: list[bytes] = []
    small = [b"*%d\r\n" % len(command)]
    for argument in command:
        if isinstance(argument, str):
            data = argument.encode()
        elif isinstance(argument, bytes):
            data = argument
        else:
            data = repr(argument).encode()
        if len(data) < LARGE:
            small.append(b"$%d\r\n%s\r\n" % (len(data), data))
        else:
            small.append(b"$%d\r\n" % len(data))
            buffers += [b"".join(small), data]
            small = [b"\r\n"]
    buffers.append(b"".join(small))
    return buffers


def _describe(client: redis.Redis) -> str:
    kwargs = client.get_connection_kwargs()
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"


class Server:
    """A Redis client whose errors become dash_database's.

    :param target: a ``redis://``, ``rediss://`` or ``unix://`` URL, or a
        ready ``redis.Redis`` client (which :meth:`close` leaves open).
    :param timeout: seconds to wait for the server to connect or answer.
    :raises TypeError: ``target`` is neither.
    :raises ValueError: a client that decodes responses.
    """

    def __init__(self, target: object, timeout: float) -> None:
        if isinstance(target, str):
            #: The server's URL, never with its password.
            self.location = redact(target)
            self.client = redis.Redis.from_url(
                target,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
            )
            self._owns_client = True
        elif isinstance(target, redis.Redis):
            self.location = _describe(target)
            self.client = target
            self._owns_client = False
        else:
            raise TypeError(
                "db_location must be None, ':memory:', a file path, a redis:// URL or a "
                f"redis.Redis client, not {type(target).__name__}"
            )
        if self.client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("pass a redis.Redis client made with decode_responses=False")

    def fail(self, exc: redis.RedisError) -> NoReturn:
        """Raise the dash_database error that stands for ``exc``."""
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            raise ConnectionFailedError(
                f"{self.location}: cannot reach the Redis server ({exc}); check that it runs "
                "and the URL and password are right. This call changed nothing."
            ) from exc
        raise StorageError(f"{self.location}: Redis refused the operation: {exc}") from exc

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, with its Redis errors turned into ours."""
        try:
            return function(*args, **kwargs)
        except redis.RedisError as exc:
            self.fail(exc)

    def run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a registered script in one round trip (a write: see the module)."""
        # EVALSHA straight away: redis-py's Script.__call__ costs more per call.
        try:
            return self.write("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # Not run: the server does not know it (new, or flushed). Load it, run again.
            self.call(self.client.script_load, script.script)
            return self.write("EVALSHA", script.sha, len(keys), *keys, *args)

    def write(self, *command: str | bytes | int | float) -> Any:
        """Send a command that changes the server, and return its reply.

        :raises OutcomeUnknownError: the connection failed once it was sent.
        :raises ConnectionFailedError: it failed before; nothing changed.
        :raises redis.exceptions.NoScriptError: EVALSHA of a script the server lacks.
        """
        pool = self.client.connection_pool
        try:  # it may connect: a failure here sent nothing
            # redis-py before 5.3 needs a command name here; later versions warn about one.
            connection = pool.get_connection(*(() if redis.VERSION >= (5, 3) else command[:1]))
        except redis.RedisError as exc:
            self.fail(exc)
        try:
            try:
                connection.send_packed_command(pack(command))  # type: ignore[no-untyped-call]
            except redis.RedisError as exc:
                connection.disconnect()  # type: ignore[no-untyped-call]
                self.fail(exc)
            try:
                return connection.read_response()
            except redis.exceptions.NoScriptError:
                raise
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # A reply may still come: it must never be read as another call's.
                connection.disconnect()  # type: ignore[no-untyped-call]
                raise OutcomeUnknownError(
                    f"{self.location}: the connection failed after the request was sent "
                    f"({exc}): the call may have been applied. Read the value back before "
                    "retrying it"
                ) from exc
            except redis.RedisError as exc:
                self.fail(exc)
        finally:
            pool.release(connection)

    def close(self) -> None:
        """Close the connections of a client this object made; never deletes data."""
        if self._owns_client:
            self.client.close()
