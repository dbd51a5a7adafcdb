"""The async face: :class:`AsyncDashDatabase`, for ``async def`` callbacks and ASGI servers.

One design, two faces, as httpx has ``Client`` and ``AsyncClient``: an
``AsyncDashDatabase`` holds a :class:`~dash_database.DashDatabase` and runs
each call on a worker thread (``asyncio.to_thread``). Argument checks,
activity, expiry and quotas are the sync face's own, not copies, and the
event loop never waits for SQLite, for pickling, or for the network.

A whole call on a thread, rather than ``redis.asyncio`` for the network
part, keeps no state bound to one event loop, so each request may run on a
new loop (as Flask's async views do); ``docs/benchmarks.md`` has the
measured comparison.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from .activity import Progress
from .async_views import AsyncInspector, AsyncUserValues
from .backends.locations import Location
from .checking import RepairReport
from .converting import ConvertReport
from .copying import CopyReport
from .database import DashDatabase, Duration
from .keys import Key, check_key
from .resigning import SignReport
from .signing import SecretKey
from .stats import Stats, UserStats


class _OpenedLater(DashDatabase):
    """The sync face under an async one: a Redis server is reached on the first call."""

    _connect = False
    _face = "AsyncDashDatabase"


class AsyncDashDatabase:
    """Per-user values for ``async def`` code; the same store as :class:`DashDatabase`.

    Takes the same arguments as :class:`DashDatabase`, and has every one of its
    methods under the same name, as a coroutine. A SQLite file is opened here;
    a Redis server is reached on the first call that needs it, which raises
    :class:`~dash_database.exceptions.ConnectionFailedError` if it cannot.
    """

    def __init__(
        self,
        db_location: Location = None,
        *,
        serializer: str = "pickle",
        timeout: float = 30.0,
        durability: str = "normal",
        prefix: str | None = None,
        expire_after: Duration | None = None,
        max_keys_per_user: int | None = None,
        max_bytes_per_user: int | None = None,
        max_total_bytes: int | None = None,
        secret_key: SecretKey | None = None,
        compress: str | None = None,
        compress_level: int | None = None,
    ) -> None:
        #: The sync face over the same engine, for code that is not async.
        self.sync = _OpenedLater(
            db_location,
            serializer=serializer,
            timeout=timeout,
            durability=durability,
            prefix=prefix,
            expire_after=expire_after,
            max_keys_per_user=max_keys_per_user,
            max_bytes_per_user=max_bytes_per_user,
            max_total_bytes=max_total_bytes,
            secret_key=secret_key,
            compress=compress,
            compress_level=compress_level,
        )
        #: Read-only views for operators; see :class:`~dash_database.inspection.Inspector`.
        self.inspect = AsyncInspector(self.sync.inspect)

    async def store_user_value(self, user_id: Key, key_name: Key, value: Any) -> None:
        """Store ``value``; see :meth:`DashDatabase.store_user_value`."""
        await asyncio.to_thread(self.sync.store_user_value, user_id, key_name, value)

    async def get_user_value(self, user_id: Key, key_name: Key, default: Any = None) -> Any:
        """The value, or ``default``; see :meth:`DashDatabase.get_user_value`."""
        return await asyncio.to_thread(self.sync.get_user_value, user_id, key_name, default)

    async def has_user_value(self, user_id: Key, key_name: Key) -> bool:
        """Whether the user has a value under ``key_name``, without reading it."""
        return await asyncio.to_thread(self.sync.has_user_value, user_id, key_name)

    async def count_user_values(self, user_id: Key) -> int:
        """How many values the user has, without reading them."""
        return await asyncio.to_thread(self.sync.count_user_values, user_id)

    async def list_stored_user_keys(self, user_id: Key) -> list[Key]:
        """The user's key names: ints in numeric order, then strs in code-point order."""
        return await asyncio.to_thread(self.sync.list_stored_user_keys, user_id)

    async def delete_user_value(
        self, user_id: Key, key_name: Key, if_not_exists: str = "ignore"
    ) -> None:
        """Delete one value; see :meth:`DashDatabase.delete_user_value`."""
        await asyncio.to_thread(self.sync.delete_user_value, user_id, key_name, if_not_exists)

    async def delete_all_user_values(self, user_id: Key) -> None:
        """Delete every value of the user, and its activity, in one transaction."""
        await asyncio.to_thread(self.sync.delete_all_user_values, user_id)

    async def update_user_value(
        self, user_id: Key, key_name: Key, func: Callable[[Any], Any], default: Any = None
    ) -> Any:
        """Store and return ``func(old)`` atomically; ``func`` is a plain function, run once
        per successful write, on the worker thread."""
        return await asyncio.to_thread(
            self.sync.update_user_value, user_id, key_name, func, default
        )

    async def rename_user(self, old_id: Key, new_id: Key) -> int:
        """Move a user's values and activity to a new id; see :meth:`DashDatabase.rename_user`."""
        return await asyncio.to_thread(self.sync.rename_user, old_id, new_id)

    async def copy_to(
        self,
        destination: DashDatabase | AsyncDashDatabase,
        users: Iterable[Key] | None = None,
        overwrite: bool = False,
        progress: Progress | None = None,
    ) -> CopyReport:
        """Copy users' values and activity to another store; see :meth:`DashDatabase.copy_to`."""
        target = destination.sync if isinstance(destination, AsyncDashDatabase) else destination
        return await asyncio.to_thread(self.sync.copy_to, target, users, overwrite, progress)

    async def sign_values(
        self, progress: Progress | None = None, *, trust_unsigned: bool = False
    ) -> SignReport:
        """Sign every value not signed by the current key; see :meth:`DashDatabase.sign_values`."""
        sign = self.sync.sign_values
        return await asyncio.to_thread(sign, progress, trust_unsigned=trust_unsigned)

    async def convert_to_data(
        self,
        *,
        trust_pickles: bool = False,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> ConvertReport:
        """Rewrite pickled values code-free; see :meth:`DashDatabase.convert_to_data`."""
        convert = self.sync.convert_to_data
        return await asyncio.to_thread(
            convert, trust_pickles=trust_pickles, dry_run=dry_run, progress=progress
        )

    async def repair(
        self, *, dry_run: bool = False, progress: Progress | None = None
    ) -> RepairReport:
        """Drop damaged values and recount; see :meth:`DashDatabase.repair`."""
        return await asyncio.to_thread(self.sync.repair, dry_run=dry_run, progress=progress)

    async def list_users(self) -> list[Key]:
        """Every user id that holds at least one value."""
        return await asyncio.to_thread(self.sync.list_users)

    async def touch(self, user_id: Key) -> None:
        """Record activity for the user now, without reading its values."""
        await asyncio.to_thread(self.sync.touch, user_id)

    async def purge_expired(
        self, older_than: Duration | None = None, progress: Progress | None = None
    ) -> int:
        """Delete every user idle past ``expire_after`` (or ``older_than``); return how many."""
        return await asyncio.to_thread(self.sync.purge_expired, older_than, progress)

    async def stats(self) -> Stats:
        """The number of users, of values, and their bytes."""
        return await asyncio.to_thread(self.sync.stats)

    async def user_stats(self, user_id: Key) -> UserStats:
        """The user's number of values, their bytes, and its last activity."""
        return await asyncio.to_thread(self.sync.user_stats, user_id)

    def user(self, user_id: Key) -> AsyncUserValues:
        """An async view of one user's values: ``await view.get(key)``, ``await view.set(...)``."""
        return AsyncUserValues(self.sync, check_key("user_id", user_id))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self.sync.closed

    async def close(self) -> None:
        """Release the database; a temporary file is removed. Calling it again does nothing."""
        await asyncio.to_thread(self.sync.close)

    async def __aenter__(self) -> AsyncDashDatabase:
        self.sync.__enter__()  # raises if closed
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return repr(self.sync)
