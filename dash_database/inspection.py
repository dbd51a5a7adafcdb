"""Looking at a store without changing it: ``db.inspect``, for operators and the CLI.

Nothing here records activity, drops an expired user or collects garbage:
an operator's look leaves every user's last activity, and so its expiry
clock, where it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import sessions
from .activity import Activity
from .backends.base import MISSING, Backend
from .exceptions import KeyNotFoundError
from .keys import Key, check_key, sort_keys
from .serialization import Codec
from .sessions import Stats, UserStats, to_seconds


@dataclass(frozen=True)
class UserSummary:
    """What one user holds, as an operator sees it.

    :param user_id: the user.
    :param keys: values stored.
    :param bytes: bytes the serialized values take (missing data not counted).
    :param last_activity: the user's last recorded activity (``time.time()``), or ``None``.
    :param missing: values whose data is missing or whose record is damaged.
    """

    user_id: Key
    keys: int
    bytes: int
    last_activity: float | None
    missing: int = 0


class Inspector:
    """Read-only views of one database.

    :param open_backend: returns the open engine, or raises if the database is closed.
    :param activity: the database's activity bookkeeping (for what counts as expired).
    """

    def __init__(self, open_backend: Callable[[], Backend], activity: Activity) -> None:
        self._backend = open_backend
        self._activity = activity

    def users(self) -> list[UserSummary]:
        """Every live user with its keys, bytes and last activity, in the order of ids."""
        backend = self._backend()
        seen, when = backend.sessions(), sessions.now()
        totals: dict[Key, tuple[int, int, int]] = {}
        for user, _, size in backend.value_sizes(None):
            keys, stored, missing = totals.get(user, (0, 0, 0))
            totals[user] = (keys + 1, stored + (size or 0), missing + (size is None))
        return [
            UserSummary(user, totals[user][0], totals[user][1], seen.get(user), totals[user][2])
            for user in sort_keys(list(totals))
            if not self._activity.is_expired(seen.get(user, when), when)
        ]

    def stats(self) -> Stats:
        """The number of live users, of their values, and their bytes."""
        users = self.users()
        keys, stored = sum(u.keys for u in users), sum(u.bytes for u in users)
        return Stats(len(users), keys, stored, missing=sum(u.missing for u in users))

    def user_stats(self, user_id: Key) -> UserStats:
        """The user's number of values, their bytes, and its last activity."""
        backend, user_id = self._backend(), check_key("user_id", user_id)
        seen = backend.seen(user_id)
        if seen is not None and self._activity.is_expired(seen, sessions.now()):
            return UserStats(keys=0, bytes=0, last_activity=None)
        sizes = [size for *_, size in backend.value_sizes(user_id)]
        missing = sizes.count(None)
        stored = sum(size for size in sizes if size is not None)
        return UserStats(keys=len(sizes), bytes=stored, last_activity=seen, missing=missing)

    def key_sizes(self, user_id: Key) -> dict[Key, int | None]:
        """The user's key names and stored bytes (``None``: the data is missing or damaged)."""
        backend, user_id = self._backend(), check_key("user_id", user_id)
        sizes = {key: size for _, key, size in backend.value_sizes(user_id)}
        return {key: sizes[key] for key in sort_keys(list(sizes))}

    def head(self, user_id: Key, key_name: Key, limit: int = 64 * 1024) -> bytes | None:
        """The serializer's tag and the first bytes of a stored value, not decoded; or ``None``."""
        backend, user_id = self._backend(), check_key("user_id", user_id)
        return backend.head(user_id, check_key("key_name", key_name), limit)

    def value(self, user_id: Key, key_name: Key, *, unpickle: bool = False) -> Any:
        """The stored value, decoded without running code unless ``unpickle``.

        :param unpickle: with ``serializer="pickle"``, unpickle anything, which
            runs code chosen by whoever wrote the value: only for stores whose
            every writer you trust. Without it, only plain data loads.
        :raises ~dash_database.exceptions.KeyNotFoundError: no such value.
        :raises ~dash_database.exceptions.DeserializationError: not plain data
            (without ``unpickle``), or damaged.
        """
        backend, user_id = self._backend(), check_key("user_id", user_id)
        codec = None if unpickle else Codec(backend.codec.name, plain_only=True)
        value = backend.get(user_id, check_key("key_name", key_name), codec)
        if value is MISSING:
            raise KeyNotFoundError(f"user_id={user_id!r} has no value named {key_name!r}")
        return value

    def last_activity(self, user_id: Key) -> float | None:
        """The user's last recorded activity (``time.time()``), or ``None``."""
        backend = self._backend()
        return backend.seen(check_key("user_id", user_id))

    def idle_users(self, older_than: float) -> list[Key]:
        """Users idle for more than ``older_than`` seconds, oldest first."""
        backend = self._backend()
        return backend.idle_users(sessions.now() - to_seconds("older_than", older_than), 2**62)
