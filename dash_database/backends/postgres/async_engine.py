"""The PostgreSQL engine: values in a database that every process on every host shares.

A store is a schema of its own (see :mod:`.schema`), made on first use. Each
value is a row; a value larger than one chunk keeps its body in chunk rows,
written in the same transaction as its row, so no reader sees half a value and
a writer that dies halfway leaves nothing. Counters are kept by a trigger in the
statement that writes. A write without quotas is one statement; under quotas it
is one transaction that takes the user's counter row first, so racing writers
are checked one after another. ``update`` is a compare-and-set of the value's
record, retried until the timeout, as on Redis.

Reads take no lock: a chunk that a concurrent write deleted midway through a
read is noticed, and the value is read again (see :mod:`..chunk_reads`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any

from ... import async_concurrency, forks
from ...activity import Touch
from ...exceptions import StorageError
from ...keys import MISSING, Key, Where, decode_key
from ...quotas import Quotas
from ...records import is_chunked, split
from ...serialization import Codec
from ...streams import CHUNK_SIZE
from .. import async_contention
from ..async_base import AsyncBackend, AsyncRawValue, Count, Seen, ValueSize
from ..chunk_reads import ChunkVanished, check_replaced
from . import async_renaming
from .async_chunks import AsyncChunks
from .async_server import AsyncServer
from .async_writing import AsyncWriting, dumping
from .schema import VERSION, Read, Ref, Statements, check_schema, ref, tables

logger = logging.getLogger("dash_database")

_READ_ATTEMPTS = 5


class AsyncPostgresBackend(AsyncBackend):
    """Values in a PostgreSQL database.

    :param target: a ``postgresql://`` or ``postgres://`` URL, or a psycopg pool made by
        the app (see :class:`.async_server.AsyncServer`).
    :param codec: the serializer (see :class:`~..base.Engine` for it, ``quotas`` and
        ``chunk_size``).
    :param timeout: seconds to wait for a connection, and for a contended update.
    :param schema: the schema the store lives in.
    """

    def __init__(
        self,
        target: object,
        codec: Codec,
        quotas: Quotas | None = None,
        chunk_size: int = CHUNK_SIZE,
        *,
        timeout: float,
        schema: str,
    ) -> None:
        super().__init__(codec, quotas, chunk_size)
        self._quoted = check_schema(schema)
        self._target, self._timeout = target, timeout
        #: The schema the store lives in.
        self.schema = schema
        self._server = AsyncServer(target, timeout)
        self.location = self._server.location
        self._sql = Statements(self._quoted)
        self._chunks = AsyncChunks(self._server, self._sql)
        self._writing = AsyncWriting(self._server, self._sql, quotas, self.location)
        self._ready = False
        forks.register(self)
        logger.debug("opened %s (schema %s)", self.location, schema)

    async def open(self) -> None:
        """Reach the database and make the store's schema, if not done yet (once per
        database: several processes opening it at once wait for one another).

        :raises ConnectionFailedError: the database cannot be reached.
        :raises StorageError: a newer dash_database made the schema.
        """
        if self._ready:
            return
        async with self._server.transaction() as txn:
            lock = f"dash_database schema {self.schema}"
            await txn.run("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,))
            made = (await txn.run("SELECT to_regclass(%s)", (f"{self._quoted}.meta",)))[0][0]
            rows = await txn.run(self._sql.version) if made else []
            version = int(rows[0][0]) if rows else 0
            if version > VERSION:
                raise StorageError(
                    f"{self.location}: the schema was made by a newer dash_database (tables "
                    f"version {version}, this one knows {VERSION}); upgrade dash_database"
                )
            if version < VERSION:
                for statement in tables(self._quoted):
                    await txn.run(statement)
                await txn.run(self._sql.set_version, (str(VERSION),))
                logger.info("%s: made the store's tables", self.location)
        self._ready = True

    async def _load(
        self, record: bytes, user_id: Key, key_name: Key, codec: Codec | None = None
    ) -> Any:
        codec, where = codec or self.codec, (user_id, key_name)
        if not is_chunked(record):
            return codec.load_record(record, where)
        head, body = split(record)
        pieces = self._chunks.read(body, where)
        return await async_concurrency.consume(lambda p: codec.load(head, p, where), pieces)

    async def _record(self, user: Ref, key: Ref) -> bytes | None:
        found = (await self._server.query(self._sql.get.plain, (*user, *key)))[0][1]
        return None if found is None else bytes(found)

    async def _read(
        self, user: Ref, touch: Touch | None, read: Read, args: tuple[Any, ...]
    ) -> Seen[Any]:
        """A read, with ``touch`` applied first: without a touch (most reads), the plain
        statement; with one, the statement that brings the user's activity in the same
        round trip, and, when that activity needs changing, the touch and the read again
        in one transaction. The result, and the stored activity."""
        if touch is None:
            return (await self._server.query(read.plain, args))[0][1], None
        seen, result = (await self._server.query(read.touched, (*user, *args)))[0]
        drop, store = touch.outcome(seen)
        if drop or store is not None:
            async with self._server.transaction() as txn:
                seen = await self._writing.touch_in(txn, user, touch)
                result = (await txn.run(read.touched, (*user, *args)))[0][1]
        return result, seen

    async def _touched(self, user: Ref, touch: Touch) -> float | None:
        """Apply ``touch`` alone, before a change; the stored activity."""
        return (await self._read(user, touch, self._sql.seen_alone, ()))[1]

    async def get(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[Any]:
        """The stored value, or :data:`~dash_database.keys.MISSING`."""
        await self.open()
        user, key = ref(user_id), ref(key_name)
        found, seen = await self._read(user, touch, self._sql.get, (*user, *key))
        record, previous = None if found is None else bytes(found), None
        for _ in range(_READ_ATTEMPTS):
            if record is None:
                return MISSING, seen
            try:
                return await self._load(record, user_id, key_name), seen
            except ChunkVanished:
                check_replaced(record, previous, (user_id, key_name))
                previous = record  # replaced while we read it: read the new value
                record = await self._record(user, key)
        raise StorageError(f"{self.location}: the value kept changing while it was read; retry")

    async def contains(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Whether a value is stored, without reading it."""
        await self.open()
        user, key = ref(user_id), ref(key_name)
        return await self._read(user, touch, self._sql.has, (*user, *key))

    async def keys(self, user_id: Key, touch: Touch | None) -> Seen[list[Key]]:
        """The user's key names."""
        await self.open()
        user = ref(user_id)
        found, seen = await self._read(user, touch, self._sql.keys, tuple(user))
        return [decode_key(key) for key in found], seen

    async def set(
        self, user_id: Key, key_name: Key, value: Any, touch: Touch | None
    ) -> float | None:
        """Store ``value``; committed when this returns."""
        where = (user_id, key_name)
        await self.open()
        await self._writing.write(where, dumping(self.codec, value, where), touch, self.chunk_size)
        # A write stores at least its time (see Touch.outcome): no read back needed.
        return None if touch is None else touch.now

    async def write_raw(
        self, user_id: Key, key_name: Key, head: bytes, pieces: AsyncIterable[bytes]
    ) -> None:
        """Store a record read elsewhere, as :meth:`set` stores a value."""
        await self.open()
        await self._writing.write_raw((user_id, key_name), head, pieces, self.chunk_size)

    async def read_raw(self, user_id: Key, key_name: Key) -> AsyncRawValue | None:
        """The value as stored, never decoded; ``None`` if there is none."""
        await self.open()
        record = await self._record(ref(user_id), ref(key_name))
        if record is None:
            return None
        head, body = split(record)
        if not is_chunked(record):
            return head, _one(body)
        return head, self._chunks.read(body, (user_id, key_name))

    async def _compare_and_set(
        self,
        where: Where,
        codec: Codec,
        func: Callable[[Any], Any],
        default: Any,
        touch: Touch | None,
    ) -> tuple[bool, Any]:
        """Store ``func(old value or default)``, both through ``codec``: a compare-and-set
        of the key's record (no lock is held while ``func`` runs), run again on a changed
        value until the timeout. Whether there was an old value, and the new one; with
        ``default`` :data:`MISSING`, only a stored value is replaced.

        :raises StorageError: the value kept changing for longer than the timeout.
        """
        await self.open()
        user_id, key_name = where
        user, key = ref(user_id), ref(key_name)
        if touch is not None and touch.drop_before is not None:
            # An idle user is dropped before its value is read: the compare-and-set
            # must compare with what is left, not with a value its touch deletes.
            only_drop = dataclasses.replace(touch, refresh_before=-math.inf, create=False)
            await self._touched(user, only_drop)
        started = time.monotonic()
        tries, previous = 0, None
        while True:
            tries += 1
            record = await self._record(user, key)
            if record is None and default is MISSING:
                return False, MISSING
            try:
                old = default if record is None else await self._load(record, *where, codec)
            except ChunkVanished:
                assert record is not None
                check_replaced(record, previous, where)
                previous = record  # replaced while we read it: try again
            else:
                new = func(old)
                fill, expect = dumping(codec, new, where), (record,)
                if await self._writing.write(where, fill, touch, self.chunk_size, expect):
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
        _, new = await self._compare_and_set((user_id, key_name), self.codec, func, default, touch)
        return new, None if touch is None else touch.now

    async def recode(
        self, user_id: Key, key_name: Key, codec: Codec, func: Callable[[Any], Any]
    ) -> bool:
        """Atomically replace a stored value with ``func(old)``, through ``codec``."""
        return (await self._compare_and_set((user_id, key_name), codec, func, MISSING, None))[0]

    async def delete(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Delete one value (the trigger takes its chunks and counts); whether it existed."""
        await self.open()
        user = ref(user_id)
        seen = None if touch is None else await self._touched(user, touch)
        rows = await self._server.change(self._sql.delete, (*user, *ref(key_name)))
        return rows[0][0] > 0, seen

    async def delete_user(self, user_id: Key) -> int:
        """Delete the user's values and activity in one statement."""
        await self.open()
        user = ref(user_id)
        return int((await self._server.change(self._sql.delete_user, (*user, *user)))[0][0])

    async def delete_idle_user(self, user_id: Key, cutoff: float) -> bool:
        """Delete the user if it was last active before ``cutoff``, in one statement."""
        await self.open()
        user = ref(user_id)
        rows = await self._server.change(self._sql.delete_idle, (*user, cutoff, *user))
        return bool(rows[0][0] > 0)

    async def rename_user(self, old_id: Key, new_id: Key) -> int:
        """Move the user's rows, counters and activity to ``new_id`` in one transaction (see
        :mod:`.renaming`)."""
        await self.open()
        async with self._server.transaction() as txn:
            return await async_renaming.rename(txn, self._sql, self.codec, (old_id, new_id))

    async def seen(self, user_id: Key) -> float | None:
        """The user's last recorded activity, or ``None``."""
        await self.open()
        rows = await self._server.query(self._sql.seen, tuple(ref(user_id)))
        return float(rows[0][0]) if rows else None

    async def mark_seen(self, user_id: Key, when: float, create: bool) -> None:
        """Record activity at ``when`` (never moving it back); ``create`` adds a missing user."""
        await self.open()
        user = ref(user_id)
        if create:
            await self._server.change(self._sql.mark, (*user, when))
        else:
            await self._server.change(self._sql.refresh, (when, *user))

    async def sessions(self) -> dict[Key, float]:
        """Every user's last recorded activity."""
        await self.open()
        rows = await self._server.query(self._sql.all_seen)
        return {decode_key(user): float(seen) for user, seen in rows}

    async def idle_users(self, cutoff: float, limit: int) -> list[Key]:
        """Up to ``limit`` users last active before ``cutoff``, oldest first (from an index)."""
        await self.open()
        rows = await self._server.query(self._sql.idle, (cutoff, limit))
        return [decode_key(row[0]) for row in rows]

    async def value_sizes(self, user_id: Key | None) -> list[ValueSize]:
        """``(user, key, stored bytes)`` for one user's values, or everybody's."""
        await self.open()
        if user_id is None:
            rows = await self._server.query(self._sql.sizes)
        else:
            rows = await self._server.query(self._sql.user_sizes, tuple(ref(user_id)))
        sizes: list[ValueSize] = []
        for user, key, record, recorded, chunks in rows:
            stored = await self._chunks.stored(bytes(record), recorded, chunks)
            sizes.append((decode_key(user), decode_key(key), stored))
        return sizes

    async def counts(self, user_id: Key | None) -> dict[Key, Count]:
        """``(values, stored bytes)`` of one user, or of every user, from the counters."""
        await self.open()
        if user_id is None:
            rows = await self._server.query(self._sql.all_counts)
        else:
            rows = await self._server.query(self._sql.count, tuple(ref(user_id)))
        return {decode_key(user): (int(keys), int(stored)) for user, keys, stored in rows}

    async def recount(self) -> None:
        """Rebuild every counter from the rows, in one transaction that writers wait for."""
        await self.open()
        async with self._server.transaction() as txn:
            await txn.run(self._sql.lock_values)
            for statement in self._sql.recount:
                await txn.run(statement)

    async def collect_garbage(self) -> int:
        """Remove chunks that no row names (left by a change made by hand); how many."""
        await self.open()
        return int((await self._server.change(self._sql.orphans))[0][0])

    async def aclose(self) -> None:
        """Close the connections this engine opened; never deletes data."""
        await self._server.aclose()

    def after_fork_in_child(self) -> None:
        """Give a forked child connections of its own (see :mod:`dash_database.forks`): the
        parent's stay open, untouched, for the parent."""
        forks.keep(self._server)
        self._server = AsyncServer(self._target, self._timeout)
        self._chunks = AsyncChunks(self._server, self._sql)
        self._writing = AsyncWriting(self._server, self._sql, self.quotas, self.location)


async def _one(body: bytes) -> AsyncIterator[bytes]:
    """The body of a record stored whole, as a stream of one piece."""
    yield body
