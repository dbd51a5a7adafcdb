"""One Redis server as the engine sees it: a client, its name, and errors that say what to do."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.commands.core import Script

from ...exceptions import ConnectionFailedError, StorageError

logger = logging.getLogger("dash_database")


def redact(url: str) -> str:
    """``url`` without its password, for messages and ``repr``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


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
                target, socket_timeout=timeout, socket_connect_timeout=timeout
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
        """Run a registered script in one round trip."""
        # EVALSHA straight away: redis-py's Script.__call__ costs about 30 us
        # more per call, a fifth of a whole small write on a local server.
        try:
            try:
                command = self.client.execute_command  # untyped in redis-py
                return command("EVALSHA", script.sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
            except redis.exceptions.NoScriptError:
                return script(keys=keys, args=args)  # loads it (a new or flushed server)
        except redis.RedisError as exc:
            self.fail(exc)

    def close(self) -> None:
        """Close the connections of a client this object made; never deletes data."""
        if self._owns_client:
            self.client.close()
