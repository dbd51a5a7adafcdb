"""The Redis engine: values in a server shared by every process on every host.

Each user's values are one hash, and the store's indexes (users with values,
their stored bytes, their activity) are spread over buckets whose keys share a
hash tag (see :mod:`.layout`), so that everything one user's call touches is in
one hash slot. Listing users, idle users and totals read every bucket.

Values larger than one chunk are stored as chunks (Redis refuses strings over
512 MB). Their record, ``p`` or ``j`` then ``{version}:{count}``, is written
only after every chunk, by the same script that makes the chunks permanent and
lets the old value's chunks expire, so no reader ever sees half a value. A
replaced value's chunks expire a minute later rather than at once, so that a
reader streaming them finishes.

Every write is one Lua script (:mod:`.scripts`), hence atomic; ``update`` is a
compare-and-set, retried until the timeout.
"""

from __future__ import annotations

import heapq
import json
import logging
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from typing import Any, NamedTuple

from ... import async_concurrency, clock
from ...activity import Touch
from ...exceptions import StorageError
from ...keys import MISSING, Key, Where, decode_key, encode_key
from ...quotas import Quotas
from ...records import is_chunked, split
from ...serialization import Codec
from ...streams import CHUNK_SIZE
from .. import async_contention
from ..async_base import AsyncBackend, AsyncRawValue, Count, Seen, ValueSize
from ..chunk_reads import ChunkVanished, check_replaced, redact
from . import async_renaming, scripts
from .async_chunks import AsyncChunks, Written
from .async_counters import AsyncCounters
from .async_migration import open_layout
from .async_server import AsyncServer
from .layout import Layout
from .scripts import NEED_CHUNKS
from .wire import Script, glob_escape

__all__ = ["AsyncRedisBackend", "redact"]

logger = logging.getLogger("dash_database")

#: A replaced value's chunks stay this long, so that a reader already
#: streaming them finishes with the old value instead of starting over.
REPLACED_CHUNK_SECONDS = 60
_READ_ATTEMPTS = 5
_SET = Script.of(scripts.SET)
_GET = Script.of(scripts.GET)
_TOUCH = Script.of(scripts.TOUCH)
_DELETE = Script.of(scripts.DELETE)
_DELETE_USER = Script.of(scripts.DELETE_USER)
_DELETE_IDLE = Script.of(scripts.DELETE_IDLE)
_RECOUNT_USER = Script.of(scripts.RECOUNT_USER)
_RECOUNT_TOTAL = Script.of(scripts.RECOUNT_TOTAL)


def _touch_arg(touch: Touch | None) -> str:
    """A script's touch argument (see :mod:`.scripts`); empty for none."""
    if touch is None:
        return ""
    refresh = "" if math.isinf(touch.refresh_before) else repr(touch.refresh_before)
    drop = "" if touch.drop_before is None else repr(touch.drop_before)
    return f"{touch.now!r}:{refresh}:{drop}:{'1' if touch.create else '0'}"


def _writing() -> Touch:
    """The touch of a write whose user this process saw lately: its activity is recorded only
    if the user has none. A server restarted without persistence, or one that evicted the
    activity index, has lost the activity this process remembers; a write puts it back."""
    return Touch.if_missing(clock.now())


def _seen(score: Any) -> float | None:
    """A script's answer for the user's activity (``False`` or ``None``: none)."""
    return None if score is None or score is False else float(score)


class AsyncRedisBackend(AsyncBackend):
    """Values in a Redis server.

    :param target: a ``redis://``, ``rediss://`` or ``unix://`` URL, or a
        ready ``redis.asyncio.Redis`` client (which :meth:`aclose` leaves open).
    :param codec: the serializer (see :class:`~..base.Engine` for it, ``quotas`` and
        ``chunk_size``).
    :param timeout: seconds to wait for the server to connect or answer, and
        for a contended update to get through.
    :param prefix: the start of every key written.
    """

    def __init__(
        self,
        target: object,
        codec: Codec,
        quotas: Quotas | None = None,
        chunk_size: int = CHUNK_SIZE,
        *,
        timeout: float,
        prefix: str,
    ) -> None:
        super().__init__(codec, quotas, chunk_size)
        self._server = AsyncServer(target, timeout)
        self.location = self._server.location
        self._timeout, self._prefix = timeout, prefix
        self._opened: _Opened | None = None
        logger.debug("opened %s (prefix %r)", self.location, prefix)

    async def _store(self) -> _Opened:
        """The store's layout and what reads it: read, and the store upgraded once if 2.x
        wrote it, on first use.

        :raises ConnectionFailedError: the server cannot be reached.
        """
        if self._opened is None:
            layout = await open_layout(self._server, self._prefix)
            chunks = AsyncChunks(self._server, layout)
            self._opened = _Opened(layout, chunks, AsyncCounters(self._server, layout))
        return self._opened

    async def open(self) -> Layout:
        """Reach the server and read the store's layout (its key names), if not yet done."""
        return (self._opened or await self._store()).layout

    async def _hash(self, user_id: Key, member: str | None = None) -> str:
        """The name of the user's values hash (``member``: its id, encoded already)."""
        layout = (self._opened or await self._store()).layout
        return layout.values(member or encode_key(user_id))

    async def _run(
        self, script: Script, member: str, args: list[Any], first: Sequence[str] = ()
    ) -> Any:
        """Run a per-user script; run it again with the user's chunk keys if it needs them.

        :param first: keys the script takes after the user's own, before the chunks.
        """
        store = self._opened or await self._store()
        keys = [*store.layout.user_keys(member), *first]
        answer = await self._server.run(script, keys, args)
        if answer != NEED_CHUNKS:
            return answer
        base = store.layout.base(member)
        chunks = await store.chunks.declared(keys[0], lambda v, n: f"{base}chunk:{v}:{n}")
        return await self._server.run(script, [*keys, *chunks], args)

    async def _load(
        self, record: bytes, user_id: Key, key_name: Key, codec: Codec | None = None
    ) -> Any:
        codec, where = codec or self.codec, (user_id, key_name)
        if not is_chunked(record):
            return codec.load_record(record, where)
        head, reference = split(record)
        chunks = (await self._store()).chunks
        pieces = chunks.read(chunks.keys_of(reference, user_id, key_name))
        return await async_concurrency.consume(lambda p: codec.load(head, p, where), pieces)

    async def get(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[Any]:
        """The stored value, or :data:`~dash_database.keys.MISSING`."""
        member, field, seen = encode_key(user_id), encode_key(key_name), None
        args = None if touch is None else [field, _touch_arg(touch)]
        previous = None
        for _ in range(_READ_ATTEMPTS):
            if args is None:
                values = await self._hash(user_id, member)
                record = await self._server.read("HGET", values, field)
            else:  # the read and its activity in one round trip, once
                record, score = await self._run(_GET, member, args)
                record, seen, args = record or None, _seen(score), None
            if record is None:
                return MISSING, seen
            try:
                return await self._load(record, user_id, key_name), seen
            except ChunkVanished:
                check_replaced(record, previous, (user_id, key_name))
                previous = record  # replaced while we read it: read the new value
        raise StorageError(f"{self.location}: the value kept changing while it was read; retry")

    async def _touched(self, user_id: Key, touch: Touch | None) -> float | None:
        """Apply ``touch`` alone, before a call that needs no script; the stored activity."""
        if touch is None:
            return None
        member = encode_key(user_id)
        return _seen(await self._run(_TOUCH, member, [_touch_arg(touch)]))

    async def contains(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Whether a value is stored, without reading it."""
        seen, field = await self._touched(user_id, touch), encode_key(key_name)
        values = await self._hash(user_id)
        return bool(await self._server.read("HEXISTS", values, field)), seen

    async def keys(self, user_id: Key, touch: Touch | None) -> Seen[list[Key]]:
        """The user's key names, from the user's own hash."""
        seen = await self._touched(user_id, touch)
        fields = await self._server.read("HKEYS", await self._hash(user_id))
        return [decode_key(field) for field in fields], seen

    async def _commit(
        self, user_id: Key, key_name: Key, written: Written, expect: Any = (), touch: Any = None
    ) -> bool:
        """Commit a written record with the set script (a compare-and-set with ``expect``),
        checked against the quotas; its pending chunks go if it did not commit. Return
        whether it did.

        :raises QuotaExceededError: it would have passed a limit.
        """
        store = self._opened or await self._store()
        limits = self.quotas.limits() if self.quotas else ()
        keys, size, total = (limit or 0 for limit in limits) if limits else (0, 0, 0)
        # The store's total is the sum of every bucket's, all read in the same script.
        totals = store.layout.users if total else []
        sizes = f"{REPLACED_CHUNK_SECONDS}:{written.size}:{keys}:{size}:{total}:{len(totals)}"
        member = encode_key(user_id)
        args = [encode_key(key_name), written.record, _touch_arg(touch), sizes, *expect]
        try:
            status = await self._run(_SET, member, args, [*totals, *written.chunks])
        except BaseException:
            await store.chunks.discard(written.chunks)
            raise
        if status != 1:
            await store.chunks.discard(written.chunks)
        if isinstance(status, bytes) and self.quotas is not None:  # "limit:figure"
            which, figure = map(int, status.split(b":"))
            raise self.quotas.error(which, user_id, key_name, written.size, figure)
        return bool(status == 1)

    async def set(
        self, user_id: Key, key_name: Key, value: Any, touch: Touch | None
    ) -> float | None:
        """Store ``value``; committed when this returns."""
        chunks = (self._opened or await self._store()).chunks
        written = await chunks.write(self.codec, value, (user_id, key_name), self.chunk_size)
        await self._commit(user_id, key_name, written, touch=touch or _writing())
        # A write stores at least its time (see Touch.outcome): no read back needed.
        return None if touch is None else touch.now

    async def read_raw(self, user_id: Key, key_name: Key) -> AsyncRawValue | None:
        """The value as stored, never decoded; ``None`` if there is none."""
        values = await self._hash(user_id)
        record = await self._server.read("HGET", values, encode_key(key_name))
        if record is None:
            return None
        head, body = split(record)
        if not is_chunked(record):
            return head, _one(body)
        chunks = (await self._store()).chunks
        return head, chunks.read(chunks.keys_of(body, user_id, key_name))

    async def write_raw(
        self, user_id: Key, key_name: Key, head: bytes, pieces: AsyncIterable[bytes]
    ) -> None:
        """Store a record read elsewhere, as :meth:`set` stores a value."""
        chunks = (await self._store()).chunks
        written = await chunks.write_raw(head, pieces, user_id, self.chunk_size)
        await self._commit(user_id, key_name, written)

    async def _compare_and_set(
        self,
        where: Where,
        codec: Codec,
        func: Callable[[Any], Any],
        default: Any,
        touch: Touch | None,
    ) -> tuple[bool, Any]:
        """Store ``func(old value or default)``, both through ``codec``: optimistic, a
        compare-and-set of the key's record (so writes to the user's other keys do not get
        in the way), with ``func`` run again on a changed value until the timeout. Whether
        there was an old value, and the new one; with ``default`` :data:`MISSING`, only a
        stored value is replaced.

        :raises StorageError: the value kept changing for longer than the timeout.
        """
        user_id, key_name = where
        field = encode_key(key_name)
        started = time.monotonic()
        tries, previous = 0, None
        while True:
            tries += 1
            record = await self._server.read("HGET", await self._hash(user_id), field)
            if record is None and default is MISSING:
                return False, MISSING
            try:
                old = (
                    default
                    if record is None
                    else await self._load(record, user_id, key_name, codec)
                )
            except ChunkVanished:
                check_replaced(record, previous, where)
                previous = record  # replaced while we read it: try again
            else:
                new = func(old)
                chunks = (await self._store()).chunks
                written = await chunks.write(codec, new, where, self.chunk_size)
                # Stored only if the key's record is still the one read (None: absent).
                expect = ["absent", b""] if record is None else ["equal", record]
                if await self._commit(user_id, key_name, written, expect, touch):
                    return record is not None, new
            await async_contention.back_off(self.location, where, tries, started, self._timeout)

    async def update(
        self,
        user_id: Key,
        key_name: Key,
        func: Callable[[Any], Any],
        default: Any,
        touch: Touch | None,
    ) -> Seen[Any]:
        """Atomically store and return ``func(old value or default)`` (a compare-and-set)."""
        where = (user_id, key_name)
        _, new = await self._compare_and_set(where, self.codec, func, default, touch or _writing())
        return new, None if touch is None else touch.now

    async def recode(
        self, user_id: Key, key_name: Key, codec: Codec, func: Callable[[Any], Any]
    ) -> bool:
        """Atomically replace a stored value with ``func(old)``, through ``codec``."""
        return (await self._compare_and_set((user_id, key_name), codec, func, MISSING, None))[0]

    async def delete(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Delete one value; whether it existed."""
        seen, member = await self._touched(user_id, touch), encode_key(user_id)
        return bool(await self._run(_DELETE, member, [encode_key(key_name)])), seen

    async def delete_user(self, user_id: Key) -> int:
        """Delete all the user's values in one script, hence atomically."""
        return int(await self._run(_DELETE_USER, encode_key(user_id), []))

    async def rename_user(self, old_id: Key, new_id: Key) -> int:
        """Move the user's hash, chunks and activity, in one script (see :mod:`.renaming`)."""
        store = await self._store()
        ids = (old_id, new_id)
        return await async_renaming.rename(
            self._server, store.layout, store.chunks, self.codec, ids
        )

    async def seen(self, user_id: Key) -> float | None:
        """The user's last recorded activity, or ``None``."""
        member = encode_key(user_id)
        seen = (await self.open()).user_keys(member)[2]
        return _seen(await self._server.read("ZSCORE", seen, member))

    async def mark_seen(self, user_id: Key, when: float, create: bool) -> None:
        """Record activity at ``when`` (never moving it back); ``create`` adds a missing user."""
        only = [] if create else ["XX"]
        member = encode_key(user_id)
        seen = (await self.open()).user_keys(member)[2]
        await self._server.write("ZADD", seen, *only, "GT", when, member)

    async def _buckets(self, command: str, *args: Any, **kwargs: Any) -> list[Any]:
        """``command`` run on every bucket's activity set, in one round trip."""
        pipe = (await self._server.client()).pipeline(transaction=False)
        for seen in (await self.open()).seen:
            getattr(pipe, command)(seen, *args, **kwargs)
        return list(await self._server.call(pipe.execute))

    async def sessions(self) -> dict[Key, float]:
        """Every user's last recorded activity."""
        buckets = await self._buckets("zrange", 0, -1, withscores=True)
        return {json.loads(member): float(score) for pairs in buckets for member, score in pairs}

    async def idle_users(self, cutoff: float, limit: int) -> list[Key]:
        """Up to ``limit`` users last active before ``cutoff``, oldest first."""
        buckets = await self._buckets(
            "zrangebyscore", "-inf", f"({cutoff!r}", start=0, num=limit, withscores=True
        )
        oldest = heapq.nsmallest(limit, (pair for pairs in buckets for pair in pairs), _score)
        return [json.loads(member) for member, _ in oldest]

    async def delete_idle_user(self, user_id: Key, cutoff: float) -> bool:
        """Delete the user if it was last active before ``cutoff``, in one script."""
        return bool(await self._run(_DELETE_IDLE, encode_key(user_id), [repr(cutoff)]))

    async def value_sizes(self, user_id: Key | None) -> list[ValueSize]:
        """``(user, key, stored bytes)`` for one user's values, or everybody's."""
        users = await self.users() if user_id is None else [user_id]
        client, chunks = await self._server.client(), (await self._store()).chunks
        sizes: list[ValueSize] = []
        for user in users:
            records = await self._server.call(client.hgetall, await self._hash(user))
            for field, record in records.items():
                key_name = decode_key(field)
                sizes.append((user, key_name, await chunks.stored_size(record, user, key_name)))
        return sizes

    async def recount(self) -> None:
        """Recount each user in one script, from its values, then each bucket's total; users
        whose counter was lost are found by their values' keys."""
        store, client = await self._store(), await self._server.client()
        members = {member.decode() for member in await store.counters.members()}
        for base in store.layout.bases:
            pattern = glob_escape(f"{base}user:") + "*"
            cursor = None
            while cursor != 0:  # page by page, each bounded by the timeout
                cursor, keys = await self._server.call(
                    client.scan, cursor or 0, match=pattern, count=1000
                )
                members.update(key.decode()[len(base) + len("user:") :] for key in keys)
        for member in sorted(members):
            await self._run(_RECOUNT_USER, member, [])
        for users in store.layout.users:
            await self._server.run(_RECOUNT_TOTAL, [users], [])

    async def counts(self, user_id: Key | None) -> dict[Key, Count]:
        """``(values, stored bytes)`` of one user, or of every user, in one round trip."""
        counters = (await self._store()).counters
        return await counters.counts(None if user_id is None else encode_key(user_id))

    async def head(self, user_id: Key, key_name: Key, limit: int) -> bytes | None:
        """The first ``limit`` bytes of the stored record, tag first, or ``None``."""
        values = await self._hash(user_id)
        record = await self._server.read("HGET", values, encode_key(key_name))
        if record is None:
            return None
        return await (await self._store()).chunks.head(record, user_id, key_name, limit)

    async def aclose(self) -> None:
        """Close the connections this engine opened; never deletes data."""
        await self._server.aclose()


class _Opened(NamedTuple):
    """What an engine reads once it knows its store's layout."""

    layout: Layout
    chunks: AsyncChunks
    counters: AsyncCounters


async def _one(body: bytes) -> AsyncIterator[bytes]:
    """The body of a record stored whole, as a stream of one piece."""
    yield body


def _score(pair: tuple[bytes, float]) -> float:
    return pair[1]
