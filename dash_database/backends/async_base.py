"""The contract every storage engine implements: the calls an app makes, and maintenance.

Both faces' contracts come from one text: it is written as async code, and
``tools/unasync.py`` writes the sync contract from it. The Redis and PostgreSQL
engines implement both, each from one text too; the SQLite engines implement the sync
one, and the async face reaches them through
:class:`~dash_database.backends.threaded.ThreadedBackend`.

:class:`AsyncEngine` holds the calls an app makes. :class:`~dash_database.DashDatabase`
checks the arguments and the closed state, asks :class:`~..activity.Activity` what the
call must do about the user's activity (a :class:`~..activity.Touch`, or ``None``), and
makes exactly one engine call:

* ``get_user_value``: :meth:`Engine.get`, the value or :data:`~..keys.MISSING`;
* ``store_user_value``: :meth:`Engine.set`;
* ``update_user_value``: :meth:`Engine.update`, the new value;
* ``delete_user_value``: :meth:`Engine.delete`, whether it existed;
* ``has_user_value``: :meth:`Engine.contains`, whether it exists;
* ``list_stored_user_keys`` and ``count_user_values``: :meth:`Engine.keys`;
* ``touch``: :meth:`Engine.contains` of no key, with a touch that records now;
* ``delete_all_user_values``: :meth:`Engine.delete_user`;
* ``rename_user``: :meth:`Engine.rename_user` (values signed by 2.3 are first signed
  again through :meth:`Maintenance.recode`, see :func:`~..resigning.upgrade_legacy`).

:meth:`Engine.get`, ``set``, ``update``, ``delete``, ``contains`` and ``keys`` apply the
touch in the same call, by the one rule of :meth:`~..activity.Touch.outcome`, atomically
with the operation where it writes: on SQLite and PostgreSQL, a plain read when the
stored activity needs nothing, else one transaction (on PostgreSQL a read's touch commits
just before the read, and a write's is in the write's statement or transaction); on
Redis, one script for a read or a write (the touch's own script before ``keys``,
``contains`` and ``delete``). They return the user's
stored activity after the call (``None``: none, or not read) for
:meth:`~..activity.Activity.learn`. Once per refresh interval, with expiry, a public
call also purges a few idle users through :class:`Maintenance`.

:class:`Maintenance` holds the calls that operators, copies and clean-ups make. An
engine implements both; ``codec``, ``quotas`` and ``chunk_size`` are given to its
constructor and never change.

Every engine keeps counters, each user's values and their stored bytes and
the store's total, in the same transaction (or script) as every write, delete,
rename and purge: :meth:`Maintenance.counts` reads them in time that follows the
number of users, not of values, and writes check the quotas against them inside
that transaction, so racing writers never pass a limit. A value's stored bytes
are its record's head and body (:func:`~..records.stored_size`).

Engines treat everything they read back as untrusted: another process, an
older version or an attacker may have written it. A record that names data
the engine could not have made raises
:class:`~dash_database.exceptions.DeserializationError` when read, and is
skipped (never followed) by deletes and clean-ups.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, TypeVar

from ..activity import Touch
from ..keys import Key
from ..quotas import Quotas
from ..serialization import Codec
from ..streams import CHUNK_SIZE

T = TypeVar("T")
#: A result, and the user's stored activity after the call (``None``: none, or not read).
Seen = tuple[T, float | None]
#: ``(user, key, stored bytes)``; the bytes are ``None`` where the value's
#: data is missing or its record is damaged.
ValueSize = tuple[Key, Key, int | None]
#: ``(values, stored bytes)`` of one user, from the counters.
Count = tuple[int, int]
#: A value as stored: its record's head (inline form), and its body as a stream of pieces.
AsyncRawValue = tuple[bytes, AsyncIterator[bytes]]


class AsyncEngine(abc.ABC):
    """The calls an app makes to one storage engine (see the module).

    :param codec: turns values into records and back.
    :param quotas: the limits each write checks inside its transaction; ``None``: none.
    :param chunk_size: values larger than this many bytes are streamed in pieces
        (chunks or a side file), never held as one ``bytes`` object.
    """

    #: Where the data lives, as shown by ``repr(db)`` (never with a password).
    location: str

    def __init__(self, codec: Codec, quotas: Quotas | None, chunk_size: int = CHUNK_SIZE) -> None:
        self.codec, self.quotas, self.chunk_size = codec, quotas, chunk_size

    @abc.abstractmethod
    async def get(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[Any]:
        """The stored value, or :data:`~..keys.MISSING`."""

    @abc.abstractmethod
    async def set(
        self, user_id: Key, key_name: Key, value: Any, touch: Touch | None
    ) -> float | None:
        """Store ``value``; committed when this returns. It is serialized before any lock.
        A refused write records no activity. An engine whose activity index can be lost
        apart from its values (Redis: a restart without persistence, eviction) applies
        :meth:`~..activity.Touch.if_missing` when ``touch`` is ``None``, here and in
        :meth:`update`, so that a written user always has activity; it reports ``None``.

        :raises ~dash_database.exceptions.QuotaExceededError: the write would pass
            one of the quotas; nothing changed. (:meth:`update` checks them too.)
        """

    @abc.abstractmethod
    async def update(
        self,
        user_id: Key,
        key_name: Key,
        func: Callable[[Any], Any],
        default: Any,
        touch: Touch | None,
    ) -> Seen[Any]:
        """Atomically store and return ``func(old value or default)``."""

    @abc.abstractmethod
    async def delete(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Delete one value; whether it existed."""

    @abc.abstractmethod
    async def contains(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Whether a value is stored, without reading it."""

    @abc.abstractmethod
    async def keys(self, user_id: Key, touch: Touch | None) -> Seen[list[Key]]:
        """The user's key names, in no particular order."""

    @abc.abstractmethod
    async def delete_user(self, user_id: Key) -> int:
        """Delete all the user's values and its activity atomically; return how many values."""

    @abc.abstractmethod
    async def rename_user(self, old_id: Key, new_id: Key) -> int:
        """Move all of ``old_id``'s values and its activity to ``new_id``, atomically, without
        reading or copying their bodies; signed records get the heads that
        :meth:`.Codec.rebind` gives. Return how many values moved.

        :raises ~dash_database.exceptions.UserExistsError: ``new_id`` has values; nothing changed.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release connections and files; called once."""


class AsyncMaintenance(abc.ABC):
    """The calls that operators, copies, signing and clean-ups make to one storage engine."""

    @abc.abstractmethod
    async def counts(self, user_id: Key | None) -> dict[Key, Count]:
        """``(values, stored bytes)`` of one user (``None``: of every user holding a value),
        from the counters."""

    async def users(self) -> list[Key]:
        """Every user id holding at least one value, in no particular order."""
        return list(await self.counts(None))

    @abc.abstractmethod
    async def sessions(self) -> dict[Key, float]:
        """Every recorded user's last activity."""

    async def seen(self, user_id: Key) -> float | None:
        """The user's last recorded activity, or ``None``."""
        return (await self.sessions()).get(user_id)

    @abc.abstractmethod
    async def mark_seen(self, user_id: Key, when: float, create: bool) -> None:
        """Record activity at ``when``, never moving it back; add the user only if ``create``."""

    @abc.abstractmethod
    async def idle_users(self, cutoff: float, limit: int) -> list[Key]:
        """Up to ``limit`` users last active before ``cutoff``, oldest first, from an index."""

    @abc.abstractmethod
    async def delete_idle_user(self, user_id: Key, cutoff: float) -> bool:
        """Atomically delete the user's values and activity if last active before ``cutoff``."""

    @abc.abstractmethod
    async def value_sizes(self, user_id: Key | None) -> list[ValueSize]:
        """The stored size of one user's values (``None``: everybody's), read from each."""

    @abc.abstractmethod
    async def read_raw(self, user_id: Key, key_name: Key) -> AsyncRawValue | None:
        """The value as stored, never decoded: its record's head (inline form) and its body
        as a stream of pieces (a large value is never held whole); ``None`` if there is none.

        :raises ~dash_database.exceptions.DeserializationError: a damaged head."""

    @abc.abstractmethod
    async def write_raw(
        self, user_id: Key, key_name: Key, head: bytes, pieces: AsyncIterable[bytes]
    ) -> None:
        """Store a record read by :meth:`read_raw`, checked against the quotas."""

    async def head(self, user_id: Key, key_name: Key, limit: int) -> bytes | None:
        """A record's head (inline form) and the first ``limit`` bytes of its body, or ``None``."""
        raw = await self.read_raw(user_id, key_name)
        if raw is None:
            return None
        head, pieces = raw
        body = b""
        async for piece in pieces:
            body += piece[: limit - len(body)]
            if len(body) >= limit:
                break
        return head + body

    @abc.abstractmethod
    async def recode(
        self, user_id: Key, key_name: Key, codec: Codec, func: Callable[[Any], Any]
    ) -> bool:
        """Atomically replace a value with ``func(old)``, both decoded and encoded by
        ``codec`` (signing a store in place); whether there was a value.

        :raises ~dash_database.exceptions.DeserializationError: ``codec`` refused it.
        """

    @abc.abstractmethod
    async def recount(self) -> None:
        """Rebuild every user's counters, and the store's totals, from the values it holds;
        writers racing it stay exact (each user, or the whole store, in one transaction)."""

    async def check_storage(self) -> list[str]:
        """What the storage's own check finds wrong (SQLite's ``quick_check``), one line each;
        nothing for a healthy store. Engines without such a check keep this default."""
        return []

    async def collect_garbage(self) -> int:
        """Remove what writers that died halfway left behind; return how many items.

        Engines whose leftovers expire by themselves keep this default.
        """
        return 0


class AsyncBackend(AsyncEngine, AsyncMaintenance):
    """An engine: both halves of the contract."""
