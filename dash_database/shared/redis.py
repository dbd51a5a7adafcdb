"""Shared storage on Redis: keys of its own under the store's prefix.

Under a prefix ``P``:

* ``Pshared:value:{key}``: a value, a string, expiring by ``PX`` (milliseconds);
* ``Pshared:{topic:{topic}}:head``: a topic's last sequence (``seq``), and with a ttl its
  keys' lifetime and its ttl, in milliseconds (``life``, ``ttl``);
* ``Pshared:{topic:{topic}}:messages``: its buffer, a stream of the last messages, each
  under the id ``{sequence}-0``.

A topic's two keys share a hash tag, so each script touches one hash slot. A publish is
one script (the next sequence, the message, the buffer trimmed, the keys' lifetime); a
read is one script too, which renews the lifetime of a topic with a ttl once less than
one ttl is left. A sync reader that waits blocks on the server (``XREAD BLOCK``) until a
message past its cursor comes. Async readers must not each hold one of their loop's few
connections blocked: every event loop has one :class:`_Watcher`, a blocked ``XREAD`` over
the streams of all its waiting readers on a connection of its own, which wakes the
readers whose stream got a message; a reader that starts waiting meanwhile ends the
blocked read (``CLIENT UNBLOCK``) so that the next one includes its stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from typing import Any

from ..backends.redis.async_server import AsyncServer
from ..backends.redis.server import Server
from ..backends.redis.wire import Script, glob_escape
from . import waking
from .polls import Poll, after

#: The longest a sync reader blocks on the server at once (less with a short ``timeout``).
BLOCK = 1.0
#: A topic's keys live this many ttls past its last publish or read.
SLACK = 1.25

_PUBLISH = Script.of("""
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
if seq == 1 then redis.call('DEL', KEYS[2]) end
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], seq .. '-0', 'm', ARGV[1])
if ARGV[3] == '0' then
    redis.call('HDEL', KEYS[1], 'life', 'ttl')
    redis.call('PERSIST', KEYS[1])
    redis.call('PERSIST', KEYS[2])
else
    redis.call('HSET', KEYS[1], 'life', ARGV[3], 'ttl', ARGV[4])
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return seq
""")

# Returns {head, the sequence of the first message returned, the messages...}.
_READ = Script.of("""
local head = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local life = redis.call('HGET', KEYS[1], 'life')
if life and redis.call('PTTL', KEYS[1]) < tonumber(redis.call('HGET', KEYS[1], 'ttl')) then
    redis.call('PEXPIRE', KEYS[1], life)
    redis.call('PEXPIRE', KEYS[2], life)
end
local cursor = tonumber(ARGV[1])
if cursor >= head then return {head, 0} end
local entries = redis.call('XRANGE', KEYS[2], (cursor + 1) .. '-0', '+')
if #entries == 0 then return {head, 0} end
local reply = {head, tonumber(string.match(entries[1][1], '^%d+'))}
for _, entry in ipairs(entries) do
    reply[#reply + 1] = entry[2][2]
end
return reply
""")


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _poll(cursor: int, reply: list[Any]) -> Poll:
    head, first = int(reply[0]), int(reply[1])
    return after(cursor, head, [(first + n, bytes(m)) for n, m in enumerate(reply[2:])])


def _entries(reply: Any) -> list[tuple[int, bytes]]:
    """The (sequence, message) pairs of the one stream of an ``XREAD`` reply (RESP2's list
    of pairs or RESP3's map), empty when it timed out."""
    if not reply:
        return []
    (_, entries), *_ = reply.items() if isinstance(reply, dict) else reply
    return [(int(bytes(id_).split(b"-")[0]), bytes(fields[1])) for id_, fields in entries]


class RedisShared:
    """Values and topics on the server of ``server``.

    :param server: the store's client (sync calls).
    :param async_server: a client of the same server for the async calls.
    :param prefix: the store's prefix.
    :param buffer: messages kept per topic.
    :param timeout: the store's: a blocked read must end well within it.
    """

    def __init__(
        self, server: Server, async_server: AsyncServer, prefix: str, buffer: int, timeout: float
    ) -> None:
        self._server, self._async = server, async_server
        self._watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watcher] = (
            weakref.WeakKeyDictionary()
        )
        self._block = min(BLOCK, timeout / 2)
        self._prefix, self._buffer = prefix + "shared:", buffer

    def _value(self, key: str) -> str:
        return f"{self._prefix}value:{key}"

    def _topic(self, topic: str) -> list[str]:
        tagged = f"{self._prefix}{{topic:{topic}}}"
        return [f"{tagged}:head", f"{tagged}:messages"]

    def _publish_args(self, message: bytes, ttl: float | None) -> list[Any]:
        if ttl is None:
            return [message, self._buffer, 0, 0]
        return [message, self._buffer, _milliseconds(ttl * SLACK), _milliseconds(ttl)]

    @staticmethod
    def _set_command(key: str, value: bytes, ttl: float | None) -> tuple[Any, ...]:
        if ttl is None:
            return ("SET", key, value)
        return ("SET", key, value, "PX", _milliseconds(ttl))

    def get(self, key: str) -> bytes | None:
        """The value of ``key``, unless it is missing or expired."""
        found = self._server.read("GET", self._value(key))
        return None if found is None else bytes(found)

    def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Write ``value`` under ``key``, for ``ttl`` seconds (``None``: for good)."""
        self._server.write(*self._set_command(self._value(key), value, ttl))

    def delete(self, key: str) -> None:
        """Delete ``key``, if it is there."""
        self._server.write("DEL", self._value(key))

    def publish(self, topic: str, message: bytes, ttl: float | None) -> int:
        """Append ``message`` to ``topic`` (started over if it expired); its sequence."""
        return int(self._server.run(_PUBLISH, self._topic(topic), self._publish_args(message, ttl)))

    def head(self, topic: str) -> int:
        """The sequence of ``topic``'s last message (0: none, or expired)."""
        found = self._server.read("HGET", self._topic(topic)[0], "seq")
        return 0 if found is None else int(found)

    def read(self, topic: str, cursor: int) -> Poll:
        """What ``topic`` holds after ``cursor``, now; a topic with a ttl is kept alive."""
        return _poll(cursor, self._server.run(_READ, self._topic(topic), [cursor]))

    def wait(self, topic: str, cursor: int, timeout: float) -> Poll:
        """What ``topic`` holds after ``cursor``, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        stream = self._topic(topic)[1]
        while True:
            found = self.read(topic, cursor)
            left = deadline - time.monotonic()
            if found.messages or found.gap or left <= 0:
                return found
            block = _milliseconds(min(left, self._block))
            reply = self._server.read("XREAD", "BLOCK", block, "STREAMS", stream, f"{cursor}-0")
            arrived = _entries(reply)
            if arrived and arrived[0][0] == cursor + 1:  # what came next, whole: no gap
                return after(cursor, arrived[-1][0], arrived)

    async def aget(self, key: str) -> bytes | None:
        """:meth:`get`, on the event loop."""
        found = await self._async.read("GET", self._value(key))
        return None if found is None else bytes(found)

    async def aset(self, key: str, value: bytes, ttl: float | None) -> None:
        """:meth:`set`, on the event loop."""
        await self._async.write(*self._set_command(self._value(key), value, ttl))

    async def adelete(self, key: str) -> None:
        """:meth:`delete`, on the event loop."""
        await self._async.write("DEL", self._value(key))

    async def apublish(self, topic: str, message: bytes, ttl: float | None) -> int:
        """:meth:`publish`, on the event loop."""
        args = self._publish_args(message, ttl)
        return int(await self._async.run(_PUBLISH, self._topic(topic), args))

    async def aread(self, topic: str, cursor: int) -> Poll:
        """:meth:`read`, on the event loop."""
        return _poll(cursor, await self._async.run(_READ, self._topic(topic), [cursor]))

    async def await_poll(self, topic: str, cursor: int, timeout: float) -> Poll:
        """:meth:`wait` on the event loop: between reads, this loop's one
        :class:`_Watcher` waits for every reader at once."""
        loop = asyncio.get_running_loop()
        watcher = self._watchers.get(loop)
        if watcher is None:
            watcher = self._watchers[loop] = _Watcher(self._async, self._block)
        deadline = loop.time() + timeout
        while True:
            found = await self.aread(topic, cursor)
            left = deadline - loop.time()
            if found.messages or found.gap or left <= 0:
                return found
            await watcher.wait(self._topic(topic)[1], cursor, left)


def counts(server: Server, prefix: str) -> tuple[int, int] | None:
    """The values and topics of shared storage under the store prefix ``prefix`` (a scan
    of its keys); ``None`` if there are none."""
    client, base = server.client(), glob_escape(prefix + "shared:")
    values = sum(1 for _ in client.scan_iter(match=base + "value:*", count=1000))
    topics = sum(1 for _ in client.scan_iter(match=base + "{topic:*}:head", count=1000))
    return (values, topics) if values or topics else None


class _Watcher:
    """One event loop's waiting async readers, served by one blocked ``XREAD``.

    :param server: the store's async client (the watcher's own connection copies its
        settings; ``CLIENT UNBLOCK`` goes through it).
    :param block: the longest one blocked read lasts.
    """

    def __init__(self, server: AsyncServer, block: float) -> None:
        self._server, self._block = server, block
        #: Each stream watched, and its readers: each one's future and cursor.
        self._readers: dict[str, dict[asyncio.Future[None], int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._client_id: int | None = None
        # Readers added since the blocked read started: it must end for them.
        self._added, self._seen = 0, 0

    async def wait(self, stream: str, cursor: int, timeout: float) -> None:
        """Return once ``stream`` may hold a message after ``cursor``, or after ``timeout``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._readers.setdefault(stream, {})[future] = cursor
        self._added += 1
        if self._task is not None and not self._task.done():
            await self._interrupt()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            await waking.until(future, timeout)
        finally:
            readers = self._readers.get(stream, {})
            readers.pop(future, None)
            if not readers:
                self._readers.pop(stream, None)

    async def _interrupt(self) -> None:
        assert self._task is not None
        # Until the reading task has seen the new reader: end its blocked read, if it is
        # blocked (UNBLOCK answers 0 between two reads, which then include the stream).
        task = self._task
        while self._seen < self._added and self._client_id is not None and not task.done():
            if await self._server.write("CLIENT", "UNBLOCK", self._client_id):
                return
            await asyncio.sleep(0.001)

    async def _run(self) -> None:
        pool = (await self._server.client()).connection_pool
        connection: Any = pool.connection_class(**pool.connection_kwargs)
        failed = False
        try:
            await connection.connect()
            await connection.send_command("CLIENT", "ID")
            self._client_id = int(await connection.read_response())
            while self._readers:
                self._seen = self._added
                streams = list(self._readers)
                cursors = [f"{min(self._readers[s].values())}-0" for s in streams]
                block = _milliseconds(self._block)
                await connection.send_command(
                    "XREAD", "BLOCK", block, "STREAMS", *streams, *cursors
                )
                reply = await connection.read_response()
                for stream in _streams(reply):
                    waking.wake(self._readers.get(stream, {}))
        except Exception:
            # The readers read again, and meet the failure as a clear error of their own.
            failed = True
            for readers in self._readers.values():
                waking.wake(readers)
        finally:
            self._client_id = None
            with contextlib.suppress(Exception):
                await connection.disconnect()
        if self._readers and not failed:  # readers came while this one was ending
            self._task = asyncio.create_task(self._run())


def _streams(reply: Any) -> list[str]:
    """The names of the streams an ``XREAD`` reply holds messages of (RESP2 or RESP3)."""
    if not reply:
        return []
    pairs = reply.items() if isinstance(reply, dict) else reply
    return [bytes(name).decode() for name, _ in pairs]
