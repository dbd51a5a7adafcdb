"""The memory engine: one process's private store, a dict under a lock.

``DashDatabase(":memory:")`` is for tests and single-process apps: nothing
is shared with other processes, and nothing survives the process. A plain
dict serves that better than SQLite on sqlitedict's thread, which 2.0 used:
no queue round trip per call, and a large value is kept as the list of its
chunks, so it is written and read as a stream, never as one ``bytes``.
Values are still serialized, so that a stored value never shares state with
the caller's object, and sizes and quotas mean the same as on a file.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .. import forks
from ..activity import Touch
from ..exceptions import UserExistsError
from ..keys import MISSING, Key, Where
from ..quotas import Quotas, Usage
from ..records import stored_size
from ..serialization import Codec, Fill, copy_pieces
from ..streams import CHUNK_SIZE, ChunkWriter
from .base import Backend, Count, RawValue, Seen, ValueSize

logger = logging.getLogger("dash_database")

MEMORY = ":memory:"

#: A stored value: its record's head (see :mod:`dash_database.records`), then its body in chunks.
Record = tuple[bytes, tuple[bytes, ...]]


def _size(record: Record) -> int:
    """The stored bytes of a record."""
    return stored_size(len(record[0]), sum(map(len, record[1])))


class MemoryBackend(Backend):
    """Values in this process's memory (see :class:`~.base.Engine` for the parameters)."""

    location = MEMORY

    def __init__(
        self, codec: Codec, quotas: Quotas | None = None, chunk_size: int = CHUNK_SIZE
    ) -> None:
        super().__init__(codec, quotas, chunk_size)
        self._lock = threading.Lock()
        self._values: dict[Key, dict[Key, Record]] = {}
        self._seen: dict[Key, float] = {}
        # The counters: each user's stored bytes, and the store's.
        self._bytes: dict[Key, int] = {}
        self._total_bytes = 0
        forks.register(self)

    def _encode(self, value: Any, where: Where, codec: Codec | None = None) -> Record:
        codec = codec or self.codec
        return self._encode_from(lambda out: codec.dump(value, out, where))

    def _encode_from(self, fill: Fill) -> Record:
        chunks: list[bytes] = []
        out = ChunkWriter(chunks.append, self.chunk_size)
        head = fill(out)
        if out.tail() or not chunks:
            chunks.append(out.tail())
        return head, tuple(chunks)

    def _touch(self, user_id: Key, touch: Touch | None, done: bool = True) -> float | None:
        """Apply ``touch`` (if ``done``: a refused write records nothing); under the lock.
        Return the user's stored activity."""
        if touch is None:
            return self._seen.get(user_id)
        drop, seen = touch.outcome(self._seen.get(user_id))
        if drop:
            del self._seen[user_id]
            self._drop(user_id)
        if seen is not None and done:
            self._seen[user_id] = seen
        return self._seen.get(user_id)

    def get(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[Any]:
        """The stored value, or :data:`~dash_database.keys.MISSING`."""
        if touch is None:  # a record is immutable and replaced whole: read outside the lock
            record = self._values.get(user_id, {}).get(key_name)
            seen = None
        else:
            with self._lock:
                seen = self._touch(user_id, touch)
                record = self._values.get(user_id, {}).get(key_name)
        if record is None:
            return MISSING, seen
        return self.codec.load(record[0], record[1], (user_id, key_name)), seen

    def contains(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Whether a value is stored."""
        with self._lock:
            seen = self._touch(user_id, touch)
            return key_name in self._values.get(user_id, {}), seen

    def keys(self, user_id: Key, touch: Touch | None) -> Seen[list[Key]]:
        """The user's key names."""
        with self._lock:
            seen = self._touch(user_id, touch)
            return list(self._values.get(user_id, {})), seen

    def _store(self, user_id: Key, key_name: Key, record: Record) -> None:
        """Check the quotas and store ``record``; under the lock."""
        values = self._values.get(user_id, {})
        old = values.get(key_name)
        old_size, size = (None if old is None else _size(old)), _size(record)
        if self.quotas is not None:
            usage = Usage(len(values), self._bytes.get(user_id, 0), self._total_bytes, old_size)
            self.quotas.check(user_id, key_name, size, usage)
        self._values.setdefault(user_id, {})[key_name] = record
        self._count(user_id, size - (old_size or 0))

    def _count(self, user_id: Key, change: int) -> None:
        """Add ``change`` bytes to the user's counter and the store's; under the lock."""
        self._total_bytes += change
        if user_id in self._values:
            self._bytes[user_id] = self._bytes.get(user_id, 0) + change
        else:
            self._bytes.pop(user_id, None)

    def set(self, user_id: Key, key_name: Key, value: Any, touch: Touch | None) -> float | None:
        """Store ``value``."""
        record = self._encode(value, (user_id, key_name))  # before the lock, as on a file
        with self._lock:
            self._touch(user_id, touch, done=False)  # drops an idle user first
            self._store(user_id, key_name, record)
            return self._touch(user_id, touch)  # only once stored

    def update(
        self,
        user_id: Key,
        key_name: Key,
        func: Callable[[Any], Any],
        default: Any,
        touch: Touch | None,
    ) -> Seen[Any]:
        """Atomically store and return ``func(old value or default)``."""
        with self._lock:
            self._touch(user_id, touch, done=False)
            new = self._replace(user_id, key_name, self.codec, func, default)
            return new, self._touch(user_id, touch)

    def _replace(
        self, user_id: Key, key_name: Key, codec: Codec, func: Callable[[Any], Any], default: Any
    ) -> Any:
        """Store and return ``func(old value or default)`` through ``codec``; under the lock."""
        record, where = self._values.get(user_id, {}).get(key_name), (user_id, key_name)
        new = func(default if record is None else codec.load(record[0], record[1], where))
        self._store(user_id, key_name, self._encode(new, where, codec))
        return new

    def recode(self, user_id: Key, key_name: Key, codec: Codec, func: Callable[[Any], Any]) -> bool:
        """Atomically replace a value with ``func(old)``, through ``codec``."""
        with self._lock:
            if key_name not in self._values.get(user_id, {}):
                return False
            self._replace(user_id, key_name, codec, func, None)
            return True

    def delete(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Delete one value; whether it existed."""
        with self._lock:
            seen = self._touch(user_id, touch)
            values = self._values.get(user_id, {})
            old = values.pop(key_name, None)
            if not values:
                self._values.pop(user_id, None)
            if old is not None:
                self._count(user_id, -_size(old))
        return old is not None, seen

    def delete_user(self, user_id: Key) -> int:
        """Delete the user's values and activity."""
        with self._lock:
            self._seen.pop(user_id, None)
            return self._drop(user_id)

    def _drop(self, user_id: Key) -> int:
        """Remove the user's values and counter; under the lock. Return how many values."""
        self._total_bytes -= self._bytes.pop(user_id, 0)
        return len(self._values.pop(user_id, {}))

    def rename_user(self, old_id: Key, new_id: Key) -> int:
        """Move the user's values and activity to ``new_id``."""
        with self._lock:
            if self._values.get(new_id):
                raise UserExistsError(
                    f"user_id={new_id!r} already has values; nothing was moved or changed"
                )
            values = self._values.pop(old_id, {})
            for key_name, (head, chunks) in values.items():
                rebound = self.codec.rebind(head, (old_id, key_name), (new_id, key_name))
                if rebound is not None:
                    values[key_name] = (rebound[1], chunks)
            if values:
                self._values[new_id] = values
                self._bytes[new_id] = self._bytes.pop(old_id)
            seen = self._seen.pop(old_id, None)
            self._seen.pop(new_id, None)
            if seen is not None:
                self._seen[new_id] = seen
            return len(values)

    def recount(self) -> None:
        """Rebuild the counters from the records, under the lock."""
        with self._lock:
            self._bytes = {
                user: sum(_size(record) for record in values.values())
                for user, values in self._values.items()
                if values
            }
            self._total_bytes = sum(self._bytes.values())

    def counts(self, user_id: Key | None) -> dict[Key, Count]:
        """``(values, stored bytes)`` of one user, or of every user, from the counters."""
        with self._lock:
            users = list(self._values) if user_id is None else [user_id]
            return {u: (len(self._values[u]), self._bytes[u]) for u in users if u in self._values}

    def sessions(self) -> dict[Key, float]:
        """Every user's last recorded activity."""
        with self._lock:
            return dict(self._seen)

    def seen(self, user_id: Key) -> float | None:
        """The user's last recorded activity, or ``None``."""
        return self._seen.get(user_id)

    def mark_seen(self, user_id: Key, when: float, create: bool) -> None:
        """Record activity at ``when`` (never moving it back); ``create`` adds a missing user."""
        with self._lock:
            old = self._seen.get(user_id)
            if old is not None or create:
                self._seen[user_id] = when if old is None else max(old, when)

    def idle_users(self, cutoff: float, limit: int) -> list[Key]:
        """Up to ``limit`` users last active before ``cutoff``, oldest first."""
        idle = ((seen, user) for user, seen in self.sessions().items() if seen < cutoff)
        return [user for _, user in heapq.nsmallest(limit, idle, key=lambda pair: pair[0])]

    def delete_idle_user(self, user_id: Key, cutoff: float) -> bool:
        """Delete the user if it was last active before ``cutoff``."""
        with self._lock:
            seen = self._seen.get(user_id)
            if seen is None or seen >= cutoff:
                return False
            del self._seen[user_id]
            self._drop(user_id)
            return True

    def value_sizes(self, user_id: Key | None) -> list[ValueSize]:
        """``(user, key, stored bytes)`` of one user's values, or everybody's."""
        with self._lock:
            users = list(self._values) if user_id is None else [user_id]
            return [
                (user, key, _size(record))
                for user in users
                for key, record in self._values.get(user, {}).items()
            ]

    def read_raw(self, user_id: Key, key_name: Key) -> RawValue | None:
        """The value as stored, never decoded; ``None`` if there is none."""
        record = self._values.get(user_id, {}).get(key_name)
        return None if record is None else (record[0], iter(record[1]))

    def write_raw(self, user_id: Key, key_name: Key, head: bytes, pieces: Iterable[bytes]) -> None:
        """Store a record read elsewhere, as :meth:`set` stores a value."""
        record = self._encode_from(copy_pieces(head, pieces))
        with self._lock:
            self._store(user_id, key_name, record)

    def close(self) -> None:
        """Drop every value."""
        with self._lock:
            self._values.clear()
            self._seen.clear()
            self._bytes.clear()
            self._total_bytes = 0

    def after_fork_in_child(self) -> None:
        """A forked child starts empty, with a lock of its own."""
        # Another thread may have been halfway through a change at the fork,
        # so the copied dicts are not trusted, and its lock may never be freed.
        self._lock = threading.Lock()
        self._values, self._seen, self._bytes, self._total_bytes = {}, {}, {}, 0
        logger.warning("%s: a forked process starts with an empty memory database", MEMORY)
