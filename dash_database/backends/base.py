"""The small contract every storage engine implements.

:class:`~dash_database.DashDatabase` checks arguments and the closed state,
then calls these methods: one for the operation itself, and, around it, the
few that its activity tracker needs (:meth:`Backend.seen`,
:meth:`Backend.mark_seen`...). Nothing else reaches an engine. The contract
test suite runs unchanged over every engine.

Every engine keeps counters, each user's values and their stored bytes and
the store's total, in the same transaction (or script) as every write, delete,
rename and purge: :meth:`Backend.counts` reads them in time that follows the
number of users, not of values, and writes check :attr:`Backend.quotas`
against them inside that transaction, so racing writers never pass a limit.
A value's stored bytes are its record's head and body (see :mod:`..records`): its
tag, its header if it has one, and its serialized (and maybe signed) bytes.

Engines treat everything they read back as untrusted: another process, an
older version or an attacker may have written it. A record that names data
the engine could not have made raises
:class:`~dash_database.exceptions.DeserializationError` when read, and is
skipped (never followed) by deletes and clean-ups.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..keys import Key
from ..quotas import Quotas
from ..serialization import CHUNK_SIZE, Codec, RawValue


class Missing(enum.Enum):
    """Marks "no value stored" where ``None`` is a valid stored value."""

    MISSING = enum.auto()


MISSING = Missing.MISSING

#: ``(user, key, stored bytes)``; the bytes are ``None`` where the value's
#: data is missing or its record is damaged.
ValueSize = tuple[Key, Key, int | None]
#: ``(values, stored bytes)`` of one user, from the counters.
Count = tuple[int, int]


@dataclass(frozen=True)
class Touch:
    """Activity to record in the same call as a read or write (engines whose
    :attr:`Backend.takes_touch` is true), instead of in calls of its own.

    :param now: the time of the call (``time.time()``).
    :param stale_before: record ``now`` only if the stored activity is older than this.
    :param cutoff: with expiry, a user last active before this is deleted first.
    :param create: a write: record ``now`` whatever the stored activity, adding it if
        missing. The caller then remembers ``now`` as stored, so an engine that kept an
        older time would let the user expire up to one refresh interval early.
    """

    now: float
    stale_before: float
    cutoff: float | None
    create: bool


class Backend(abc.ABC):
    """One storage engine for per-user values.

    :param codec: turns values into bytes and back.
    """

    #: Where the data lives, as shown by ``repr(db)`` (never with a password).
    location: str

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        #: Values larger than this many serialized bytes are streamed in pieces
        #: (chunks or a side file), never held as one ``bytes`` object.
        self.chunk_size = CHUNK_SIZE
        #: The limits each write checks inside its transaction; ``None``: no limits.
        self.quotas: Quotas | None = None

    #: Whether :meth:`get` and :meth:`set` take a :class:`Touch`, recording activity in the
    #: same round trip (Redis); otherwise the activity tracker calls :meth:`seen` and
    #: :meth:`mark_seen` itself.
    takes_touch = False
    #: Whether :meth:`set` alone takes a :class:`Touch`, applying it in the write's own
    #: transaction (SQLite: one commit, and no read of the activity first); reads do not.
    writes_take_touch = False

    @abc.abstractmethod
    def get(
        self, user_id: Key, key_name: Key, codec: Codec | None = None, touch: Touch | None = None
    ) -> Any:
        """Return the stored value, or :data:`MISSING`.

        :param codec: decode with this codec instead (the CLI's restricted unpickler).
        :param touch: record this activity first, in the same call (see :attr:`takes_touch`).
        """

    @abc.abstractmethod
    def read_raw(self, user_id: Key, key_name: Key) -> RawValue | None:
        """The value as stored, never decoded: its record's head (inline form) and its body
        as a stream of pieces (a large value is never held whole); ``None`` if there is none.

        :raises ~dash_database.exceptions.DeserializationError: a damaged head."""

    @abc.abstractmethod
    def write_raw(self, user_id: Key, key_name: Key, head: bytes, pieces: Iterable[bytes]) -> None:
        """Store a record read by :meth:`read_raw`, as :meth:`set` stores a value."""

    @abc.abstractmethod
    def contains(self, user_id: Key, key_name: Key) -> bool:
        """Whether a value is stored, without reading it."""

    @abc.abstractmethod
    def set(self, user_id: Key, key_name: Key, value: Any, touch: Touch | None = None) -> None:
        """Store ``value``; committed when this returns. It is serialized before any lock.

        :param touch: record this activity in the same transaction (see :attr:`takes_touch`
            and :attr:`writes_take_touch`).
        :raises ~dash_database.exceptions.QuotaExceededError: the write would pass
            one of :attr:`quotas`; nothing changed. (:meth:`write_raw` and
            :meth:`update` check them too.)
        """

    @abc.abstractmethod
    def update(
        self,
        user_id: Key,
        key_name: Key,
        func: Callable[[Any], Any],
        default: Any,
        codec: Codec | None = None,
    ) -> Any:
        """Atomically store and return ``func(old value or default)``.

        :param codec: decode the old value, and encode the new one, with this codec
            (signing a store in place).
        """

    @abc.abstractmethod
    def delete(self, user_id: Key, key_name: Key) -> bool:
        """Delete one value; return whether it existed."""

    @abc.abstractmethod
    def keys(self, user_id: Key) -> list[Key]:
        """The user's key names, in no particular order."""

    @abc.abstractmethod
    def count(self, user_id: Key) -> int:
        """How many values the user has."""

    @abc.abstractmethod
    def delete_user(self, user_id: Key) -> int:
        """Delete all the user's values and its activity atomically; return how many values."""

    @abc.abstractmethod
    def rename_user(self, old_id: Key, new_id: Key) -> int:
        """Move all of ``old_id``'s values and its activity to ``new_id``, atomically, without
        reading or copying their bodies; signed records get the heads that
        :meth:`.Codec.rebind` gives. Return how many values moved.

        :raises ~dash_database.exceptions.UserExistsError: ``new_id`` has values; nothing changed.
        """

    @abc.abstractmethod
    def users(self) -> list[Key]:
        """Every user id holding at least one value, in no particular order."""

    @abc.abstractmethod
    def seen(self, user_id: Key) -> float | None:
        """The user's last recorded activity (a ``time.time()``), or ``None``."""

    @abc.abstractmethod
    def mark_seen(self, user_id: Key, when: float, create: bool) -> None:
        """Record activity at ``when``, never moving it back; add the user only if ``create``."""

    @abc.abstractmethod
    def sessions(self) -> dict[Key, float]:
        """Every recorded user's last activity."""

    @abc.abstractmethod
    def idle_users(self, cutoff: float, limit: int) -> list[Key]:
        """Up to ``limit`` users last active before ``cutoff``, oldest first, from an index."""

    @abc.abstractmethod
    def delete_idle_user(self, user_id: Key, cutoff: float) -> bool:
        """Atomically delete the user's values and activity if last active before ``cutoff``."""

    @abc.abstractmethod
    def value_sizes(self, user_id: Key | None) -> list[ValueSize]:
        """The stored size of one user's values (``None``: everybody's)."""

    @abc.abstractmethod
    def counts(self, user_id: Key | None) -> dict[Key, Count]:
        """``(values, stored bytes)`` of one user (``None``: of every user), from the counters;
        a user without values is left out."""

    @abc.abstractmethod
    def head(self, user_id: Key, key_name: Key, limit: int) -> bytes | None:
        """A record's head (inline form) and the first ``limit`` bytes of its body, or ``None``."""

    def collect_garbage(self) -> int:
        """Remove what writers that died halfway left behind; return how many items.

        Engines whose leftovers expire by themselves keep this default.
        """
        return 0

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and files; called once."""
