# Written by tools/unasync.py from async_server.py: edit that file, then run the script.
"""One Redis server as the engine sees it: a client, its name, and errors that say what to do.

A write sent to the server may be applied even if its reply is lost on the way
back. So writes (:meth:`Server.run`, :meth:`Server.write`) are sent on a
pooled connection driven here, which tells the two cases apart: a failure before
the request left (not connected, not sent whole) changed nothing; one after it
may have been applied, and raises
:class:`~dash_database.exceptions.OutcomeUnknownError`. Nothing is ever sent
again behind the caller's back: redis-py's automatic retry (whose default has
changed between versions) is off for the clients made here, and never used for
writes on a client the app hands in.

The async face keeps one client per running event loop (see
:class:`~dash_database.concurrency.PerLoop`); the sync face, one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import redis

from ... import concurrency
from ..chunk_reads import redact
from .wire import (
    Script,
    client_for,
    decodes,
    describe,
    fail,
    outcome_unknown,
    pack,
)


class Server:
    """A Redis client whose errors become dash_database's.

    :param target: a ``redis://``, ``rediss://`` or ``unix://`` URL, or a
        ready ``redis.Redis`` client (which :meth:`close` leaves open).
    :param timeout: seconds to wait for the server to connect or answer.
    :raises TypeError: ``target`` is neither.
    :raises ValueError: a client that decodes responses.
    """

    def __init__(self, target: object, timeout: float) -> None:
        self._timeout = timeout
        if isinstance(target, str):
            #: The server's URL, never with its password.
            self.location = redact(target)
            url = target
            self._clients = concurrency.PerLoop(lambda: client_for(url, timeout), _close)
        elif isinstance(target, redis.Redis):
            self.location = describe(target)
            self._clients = concurrency.PerLoop(lambda: target, _leave_open)
        else:
            raise TypeError(
                "db_location must be None, ':memory:', a file path, a redis:// URL or a "
                f"redis.Redis client, not {type(target).__name__}"
            )
        #: Returns the client for this thread's calls (the async face: the running loop's).
        self.client = self._clients.get
        if not isinstance(target, str) and decodes(target):
            raise ValueError("pass a redis.Redis client made with decode_responses=False")

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, with its Redis errors turned into ours."""
        try:
            return concurrency.within(self._timeout, function(*args, **kwargs))
        except (redis.RedisError, TimeoutError) as exc:
            fail(self.location, exc)

    def run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a script in one round trip (a write: see the module)."""
        # EVALSHA straight away: redis-py's Script.__call__ costs more per call.
        try:
            return self.write("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # Not run: the server does not know it (new, or flushed). Load it, run again.
            client = self.client()
            self.call(client.script_load, script.text)
            return self.write("EVALSHA", script.sha, len(keys), *keys, *args)

    def read(self, *command: str | bytes | int | float) -> Any:
        """Send a command that changes nothing, and return its reply, as the server sent it.

        :raises ConnectionFailedError: the connection failed, or the server did not answer
            within the timeout.
        """
        return self._request(command, False)

    def write(self, *command: str | bytes | int | float) -> Any:
        """Send a command that changes the server, and return its reply.

        :raises OutcomeUnknownError: the connection failed once it was sent, or the server
            did not answer within the timeout.
        :raises ConnectionFailedError: it failed before; nothing changed.
        :raises redis.exceptions.NoScriptError: EVALSHA of a script the server lacks.
        """
        return self._request(command, True)

    def _request(self, command: tuple[str | bytes | int | float, ...], changes: bool) -> Any:
        """Send ``command`` on a connection driven here (see the module), within the timeout."""
        client = self.client()
        pool = client.connection_pool
        # redis-py before 5.3 needs a command name here; later versions warn about one.
        name = () if redis.VERSION >= (5, 3) else command[:1]
        try:  # it may connect: a failure here sent nothing
            connection = cast(Any, pool).get_connection(*name)
        except redis.RedisError as exc:
            fail(self.location, exc)
        try:
            with concurrency.Deadline(self._timeout, connection.disconnect) as expired:
                try:
                    connection.send_packed_command(pack(command))
                except redis.RedisError as exc:  # not sent whole: nothing to apply
                    connection.disconnect()
                    fail(self.location, _timed_out(exc, expired(), self._timeout))
                try:
                    return connection.read_response()
                except redis.exceptions.NoScriptError:
                    raise
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    # A reply may still come: it must never be read as another call's.
                    connection.disconnect()
                    lost = _timed_out(exc, expired(), self._timeout)
                    if changes:
                        raise outcome_unknown(self.location, lost) from exc
                    fail(self.location, lost)
                except redis.RedisError as exc:
                    fail(self.location, exc)
                except BaseException:
                    # Interrupted (a cancelled task) with the reply unread: the same.
                    connection.disconnect()
                    raise
        finally:
            pool.release(connection)

    def close(self) -> None:
        """Close the connections of the clients this object made; never deletes data."""
        self._clients.close()


def _close(client: redis.Redis) -> None:
    client.close()


def _leave_open(client: redis.Redis) -> None:
    """A client the app handed in is the app's to close."""


def _timed_out(exc: redis.RedisError, expired: bool, timeout: float) -> redis.RedisError:
    """``exc``, or the timeout that caused it (the deadline closed the connection)."""
    return redis.TimeoutError(f"no answer within timeout={timeout}s") if expired else exc
