# Written by tools/unasync.py from async_engine.py: edit that file, then run the script.
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
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ... import concurrency, forks
from ...activity import Touch
from ...exceptions import StorageError
from ...keys import MISSING, Key, Where, decode_key
from ...quotas import Quotas
from ...records import is_chunked, split
from ...serialization import Codec
from ...streams import CHUNK_SIZE
from .. import contention
from ..base import Backend, Count, RawValue, Seen, ValueSize
from ..chunk_reads import ChunkVanished, check_replaced
from . import renaming
from .chunks import Chunks
from .schema import VERSION, Read, Ref, Statements, check_schema, ref, tables
from .server import Server
from .writing import Writing, dumping

logger = logging.getLogger("dash_database")

_READ_ATTEMPTS = 5


class PostgresBackend(Backend):
    """Values in a PostgreSQL database.

    :param target: a ``postgresql://`` or ``postgres://`` URL, or a psycopg pool made by
        the app (see :class:`.server.Server`).
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
        self._server = Server(target, timeout)
        self.location = self._server.location
        self._sql = Statements(self._quoted)
        self._chunks = Chunks(self._server, self._sql)
        self._writing = Writing(self._server, self._sql, quotas, self.location)
        self._ready = False
        forks.register(self)
        logger.debug("opened %s (schema %s)", self.location, schema)

    def open(self) -> None:
        """Reach the database and make the store's schema, if not done yet (once per
        database: several processes opening it at once wait for one another).

        :raises ConnectionFailedError: the database cannot be reached.
        :raises StorageError: a newer dash_database made the schema.
        """
        if self._ready:
            return
        with self._server.transaction() as txn:
            lock = f"dash_database schema {self.schema}"
            txn.run("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,))
            made = (txn.run("SELECT to_regclass(%s)", (f"{self._quoted}.meta",)))[0][0]
            rows = txn.run(self._sql.version) if made else []
            version = int(rows[0][0]) if rows else 0
            if version > VERSION:
                raise StorageError(
                    f"{self.location}: the schema was made by a newer dash_database (tables "
                    f"version {version}, this one knows {VERSION}); upgrade dash_database"
                )
            if version < VERSION:
                for statement in tables(self._quoted):
                    txn.run(statement)
                txn.run(self._sql.set_version, (str(VERSION),))
                logger.info("%s: made the store's tables", self.location)
        self._ready = True

    def _load(self, record: bytes, user_id: Key, key_name: Key, codec: Codec | None = None) -> Any:
        codec, where = codec or self.codec, (user_id, key_name)
        if not is_chunked(record):
            return codec.load_record(record, where)
        head, body = split(record)
        pieces = self._chunks.read(body, where)
        return concurrency.consume(lambda p: codec.load(head, p, where), pieces)

    def _record(self, user: Ref, key: Ref) -> bytes | None:
        found = (self._server.query(self._sql.get.plain, (*user, *key)))[0][1]
        return None if found is None else bytes(found)

    def _read(self, user: Ref, touch: Touch | None, read: Read, args: tuple[Any, ...]) -> Seen[Any]:
        """A read, with ``touch`` applied first: without a touch (most reads), the plain
        statement; with one, the statement that brings the user's activity in the same
        round trip, and, when that activity needs changing, the touch and the read again
        in one transaction. The result, and the stored activity."""
        if touch is None:
            return (self._server.query(read.plain, args))[0][1], None
        seen, result = (self._server.query(read.touched, (*user, *args)))[0]
        drop, store = touch.outcome(seen)
        if drop or store is not None:
            with self._server.transaction() as txn:
                seen = self._writing.touch_in(txn, user, touch)
                result = (txn.run(read.touched, (*user, *args)))[0][1]
        return result, seen

    def _touched(self, user: Ref, touch: Touch) -> float | None:
        """Apply ``touch`` alone, before a change; the stored activity."""
        return (self._read(user, touch, self._sql.seen_alone, ()))[1]

    def get(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[Any]:
        """The stored value, or :data:`~dash_database.keys.MISSING`."""
        self.open()
        user, key = ref(user_id), ref(key_name)
        found, seen = self._read(user, touch, self._sql.get, (*user, *key))
        record, previous = None if found is None else bytes(found), None
        for _ in range(_READ_ATTEMPTS):
            if record is None:
                return MISSING, seen
            try:
                return self._load(record, user_id, key_name), seen
            except ChunkVanished:
                check_replaced(record, previous, (user_id, key_name))
                previous = record  # replaced while we read it: read the new value
                record = self._record(user, key)
        raise StorageError(f"{self.location}: the value kept changing while it was read; retry")

    def contains(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Whether a value is stored, without reading it."""
        self.open()
        user, key = ref(user_id), ref(key_name)
        return self._read(user, touch, self._sql.has, (*user, *key))

    def keys(self, user_id: Key, touch: Touch | None) -> Seen[list[Key]]:
        """The user's key names."""
        self.open()
        user = ref(user_id)
        found, seen = self._read(user, touch, self._sql.keys, tuple(user))
        return [decode_key(key) for key in found], seen

    def set(self, user_id: Key, key_name: Key, value: Any, touch: Touch | None) -> float | None:
        """Store ``value``; committed when this returns."""
        where = (user_id, key_name)
        self.open()
        self._writing.write(where, dumping(self.codec, value, where), touch, self.chunk_size)
        # A write stores at least its time (see Touch.outcome): no read back needed.
        return None if touch is None else touch.now

    def write_raw(self, user_id: Key, key_name: Key, head: bytes, pieces: Iterable[bytes]) -> None:
        """Store a record read elsewhere, as :meth:`set` stores a value."""
        self.open()
        self._writing.write_raw((user_id, key_name), head, pieces, self.chunk_size)

    def read_raw(self, user_id: Key, key_name: Key) -> RawValue | None:
        """The value as stored, never decoded; ``None`` if there is none."""
        self.open()
        record = self._record(ref(user_id), ref(key_name))
        if record is None:
            return None
        head, body = split(record)
        if not is_chunked(record):
            return head, _one(body)
        return head, self._chunks.read(body, (user_id, key_name))

    def _compare_and_set(
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
        self.open()
        user_id, key_name = where
        user, key = ref(user_id), ref(key_name)
        if touch is not None and touch.drop_before is not None:
            # An idle user is dropped before its value is read: the compare-and-set
            # must compare with what is left, not with a value its touch deletes.
            only_drop = dataclasses.replace(touch, refresh_before=-math.inf, create=False)
            self._touched(user, only_drop)
        started = time.monotonic()
        tries, previous = 0, None
        while True:
            tries += 1
            record = self._record(user, key)
            if record is None and default is MISSING:
                return False, MISSING
            try:
                old = default if record is None else self._load(record, *where, codec)
            except ChunkVanished:
                assert record is not None
                check_replaced(record, previous, where)
                previous = record  # replaced while we read it: try again
            else:
                new = func(old)
                fill, expect = dumping(codec, new, where), (record,)
                if self._writing.write(where, fill, touch, self.chunk_size, expect):
                    return record is not None, new
            contention.back_off(self.location, where, tries, started, self._timeout)

    def update(
        self,
        user_id: Key,
        key_name: Key,
        func: Callable[[Any], Any],
        default: Any,
        touch: Touch | None,
    ) -> Seen[Any]:
        """Atomically store and return ``func(old value or default)`` (a compare-and-set)."""
        _, new = self._compare_and_set((user_id, key_name), self.codec, func, default, touch)
        return new, None if touch is None else touch.now

    def recode(self, user_id: Key, key_name: Key, codec: Codec, func: Callable[[Any], Any]) -> bool:
        """Atomically replace a stored value with ``func(old)``, through ``codec``."""
        return (self._compare_and_set((user_id, key_name), codec, func, MISSING, None))[0]

    def delete(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Delete one value (the trigger takes its chunks and counts); whether it existed."""
        self.open()
        user = ref(user_id)
        seen = None if touch is None else self._touched(user, touch)
        rows = self._server.change(self._sql.delete, (*user, *ref(key_name)))
        return rows[0][0] > 0, seen

    def delete_user(self, user_id: Key) -> int:
        """Delete the user's values and activity in one statement."""
        self.open()
        user = ref(user_id)
        return int((self._server.change(self._sql.delete_user, (*user, *user)))[0][0])

    def delete_idle_user(self, user_id: Key, cutoff: float) -> bool:
        """Delete the user if it was last active before ``cutoff``, in one statement."""
        self.open()
        user = ref(user_id)
        rows = self._server.change(self._sql.delete_idle, (*user, cutoff, *user))
        return bool(rows[0][0] > 0)

    def rename_user(self, old_id: Key, new_id: Key) -> int:
        """Move the user's rows, counters and activity to ``new_id`` in one transaction (see
        :mod:`.renaming`)."""
        self.open()
        with self._server.transaction() as txn:
            return renaming.rename(txn, self._sql, self.codec, (old_id, new_id))

    def seen(self, user_id: Key) -> float | None:
        """The user's last recorded activity, or ``None``."""
        self.open()
        rows = self._server.query(self._sql.seen, tuple(ref(user_id)))
        return float(rows[0][0]) if rows else None

    def mark_seen(self, user_id: Key, when: float, create: bool) -> None:
        """Record activity at ``when`` (never moving it back); ``create`` adds a missing user."""
        self.open()
        user = ref(user_id)
        if create:
            self._server.change(self._sql.mark, (*user, when))
        else:
            self._server.change(self._sql.refresh, (when, *user))

    def sessions(self) -> dict[Key, float]:
        """Every user's last recorded activity."""
        self.open()
        rows = self._server.query(self._sql.all_seen)
        return {decode_key(user): float(seen) for user, seen in rows}

    def idle_users(self, cutoff: float, limit: int) -> list[Key]:
        """Up to ``limit`` users last active before ``cutoff``, oldest first (from an index)."""
        self.open()
        rows = self._server.query(self._sql.idle, (cutoff, limit))
        return [decode_key(row[0]) for row in rows]

    def value_sizes(self, user_id: Key | None) -> list[ValueSize]:
        """``(user, key, stored bytes)`` for one user's values, or everybody's."""
        self.open()
        if user_id is None:
            rows = self._server.query(self._sql.sizes)
        else:
            rows = self._server.query(self._sql.user_sizes, tuple(ref(user_id)))
        sizes: list[ValueSize] = []
        for user, key, record, recorded, chunks in rows:
            stored = self._chunks.stored(bytes(record), recorded, chunks)
            sizes.append((decode_key(user), decode_key(key), stored))
        return sizes

    def counts(self, user_id: Key | None) -> dict[Key, Count]:
        """``(values, stored bytes)`` of one user, or of every user, from the counters."""
        self.open()
        if user_id is None:
            rows = self._server.query(self._sql.all_counts)
        else:
            rows = self._server.query(self._sql.count, tuple(ref(user_id)))
        return {decode_key(user): (int(keys), int(stored)) for user, keys, stored in rows}

    def recount(self) -> None:
        """Rebuild every counter from the rows, in one transaction that writers wait for."""
        self.open()
        with self._server.transaction() as txn:
            txn.run(self._sql.lock_values)
            for statement in self._sql.recount:
                txn.run(statement)

    def collect_garbage(self) -> int:
        """Remove chunks that no row names (left by a change made by hand); how many."""
        self.open()
        return int((self._server.change(self._sql.orphans))[0][0])

    def close(self) -> None:
        """Close the connections this engine opened; never deletes data."""
        self._server.close()

    def after_fork_in_child(self) -> None:
        """Give a forked child connections of its own (see :mod:`dash_database.forks`): the
        parent's stay open, untouched, for the parent."""
        forks.keep(self._server)
        self._server = Server(self._target, self._timeout)
        self._chunks = Chunks(self._server, self._sql)
        self._writing = Writing(self._server, self._sql, self.quotas, self.location)


def _one(body: bytes) -> Iterator[bytes]:
    """The body of a record stored whole, as a stream of one piece."""
    yield body
