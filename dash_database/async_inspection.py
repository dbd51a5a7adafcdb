"""Looking at a store without changing it: ``db.inspect``, for operators and the CLI.

Nothing here records activity, drops an expired user or collects garbage:
an operator's look leaves every user's last activity, and so its expiry
clock, where it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import async_checking, async_concurrency, clock
from .activity import Activity, Progress
from .backends.async_base import AsyncBackend, ValueSize
from .clock import to_seconds
from .exceptions import KeyNotFoundError
from .keys import Key, check_key, sort_keys
from .reports import CheckReport
from .serialization import Codec, kind_name
from .stats import Stats, UserStats, UserSummary


def _stats(users: int, sizes: list[int | None]) -> Stats:
    """The figures of values of these stored sizes (``None``: missing)."""
    stored = sum(size for size in sizes if size is not None)
    return Stats(users, len(sizes), stored, missing=sizes.count(None))


async def _readable_sizes(
    backend: AsyncBackend, rows: list[ValueSize], progress: Progress | None = None
) -> list[int | None]:
    """The stored size of each value of ``rows``, ``None`` where its data is missing or
    cannot be read back; ``progress`` is called with the running count of values read."""
    sizes: list[int | None] = []
    for done, (user_id, key_name, size) in enumerate(rows, 1):
        if size is not None and await async_checking.damage(
            backend, backend.codec, user_id, key_name
        ):
            size = None
        sizes.append(size)
        if progress is not None:
            progress(done)
    return sizes


class AsyncInspector:
    """Read-only views of one database.

    :meth:`users`, :meth:`stats` and :meth:`user_stats` read the engine's
    counters: their cost follows the number of users, not of values. With
    ``check=True`` they read every value instead, through its checks (checksum or
    signature; nothing it holds is run), and count as ``missing`` the values whose data
    went missing or was damaged behind the store's back.

    :param open_backend: returns the open engine, or raises if the database is closed.
    :param activity: the database's activity bookkeeping (for what counts as expired).
    """

    def __init__(self, open_backend: Callable[[], AsyncBackend], activity: Activity) -> None:
        self._backend = open_backend
        self._activity = activity

    async def users(self) -> list[UserSummary]:
        """Every live user with its values, bytes and last activity, in the order of ids."""
        backend = self._backend()
        seen, when = await backend.sessions(), clock.now()
        counts = await backend.counts(None)
        return [
            UserSummary(user, *counts[user], seen.get(user))
            for user in sort_keys(list(counts))
            if not self._activity.is_expired(seen.get(user, when), when)
        ]

    async def stats(self, check: bool = False, progress: Progress | None = None) -> Stats:
        """The number of live users, of their values, and their bytes.

        :param check: read every value (slow), and count those missing or damaged.
        :param progress: with ``check``, called with the running count of values read.
        """
        if not check:
            users = await self.users()
            return Stats(len(users), sum(u.keys for u in users), sum(u.bytes for u in users))
        backend = self._backend()
        seen, when = await backend.sessions(), clock.now()
        live = [
            row
            for row in await backend.value_sizes(None)
            if not self._activity.is_expired(seen.get(row[0], when), when)
        ]
        sizes = await _readable_sizes(backend, live, progress)
        return _stats(len({user for user, *_ in live}), sizes)

    async def user_stats(self, user_id: Key, check: bool = False) -> UserStats:
        """The user's number of values, their bytes, and its last activity.

        :param check: read every value, and count those missing or damaged.
        """
        backend, user_id = self._backend(), check_key("user_id", user_id)
        seen = await backend.seen(user_id)
        if seen is not None and self._activity.is_expired(seen, clock.now()):
            return UserStats(keys=0, bytes=0, last_activity=None)
        if not check:
            keys, stored = (await backend.counts(user_id)).get(user_id, (0, 0))
            return UserStats(keys=keys, bytes=stored, last_activity=seen)
        sizes = await _readable_sizes(backend, await backend.value_sizes(user_id))
        totals = _stats(1, sizes)
        return UserStats(totals.keys, totals.bytes, seen, totals.missing)

    async def check(self, progress: Progress | None = None) -> CheckReport:
        """Check the store: the engine's own check, every value's data (read without running
        anything it holds) and the counters against the values (:mod:`.checking`).

        :param progress: called with the running count of values checked.
        """
        backend = self._backend()
        return await async_checking.check(backend, backend.codec, progress)

    async def key_sizes(self, user_id: Key) -> dict[Key, int | None]:
        """The user's key names and stored bytes (``None``: the data is missing or damaged)."""
        backend, user_id = self._backend(), check_key("user_id", user_id)
        sizes = {key: size for _, key, size in await backend.value_sizes(user_id)}
        return {key: sizes[key] for key in sort_keys(list(sizes))}

    async def head(self, user_id: Key, key_name: Key, limit: int = 64 * 1024) -> bytes | None:
        """The serializer's tag and the first bytes of a stored value, not decoded; or ``None``."""
        backend, user_id = self._backend(), check_key("user_id", user_id)
        return await backend.head(user_id, check_key("key_name", key_name), limit)

    async def value(self, user_id: Key, key_name: Key, *, unpickle: bool = False) -> Any:
        """The stored value, decoded by the serializer that wrote it (whichever the store's
        is), without running code unless ``unpickle``.

        :param unpickle: for a pickled value, unpickle anything, which runs code
            chosen by whoever wrote the value: only for stores whose every writer
            you trust. Without it, only plain data loads.
        :raises ~dash_database.exceptions.KeyNotFoundError: no such value.
        :raises ~dash_database.exceptions.DeserializationError: not plain data
            (without ``unpickle``), damaged, or (with a key) not signed by it.
        """
        backend, user_id = self._backend(), check_key("user_id", user_id)
        key_name = check_key("key_name", key_name)
        raw = await backend.read_raw(user_id, key_name)
        if raw is None:
            raise KeyNotFoundError(f"user_id={user_id!r} has no value named {key_name!r}")
        head, pieces = raw
        codec = Codec(kind_name(head), plain_only=not unpickle, signer=backend.codec.signer)
        where = (user_id, key_name)
        return await async_concurrency.consume(lambda p: codec.load(head, p, where), pieces)

    async def last_activity(self, user_id: Key) -> float | None:
        """The user's last recorded activity (``time.time()``), or ``None``."""
        backend = self._backend()
        return await backend.seen(check_key("user_id", user_id))

    async def idle_users(self, older_than: float) -> list[Key]:
        """Users idle for more than ``older_than`` seconds, oldest first."""
        backend = self._backend()
        return await backend.idle_users(clock.now() - to_seconds("older_than", older_than), 2**62)
