"""The async views of the async face: one user's values, and the operator's inspector.

Each call runs the sync one on a worker thread (see :mod:`.async_database`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .checking import CheckReport, Progress
from .database import DashDatabase
from .exceptions import KeyNotFoundError
from .inspection import Inspector, UserSummary
from .keys import Key
from .stats import Stats, UserStats


class AsyncUserValues:
    """One user's values, for ``async def`` code: ``await view.get(key)``...

    :param db: the sync database under the async face.
    :param user_id: the user, already checked.
    """

    def __init__(self, db: DashDatabase, user_id: Key) -> None:
        self._db = db
        self.user_id = user_id

    async def get(self, key_name: Key, default: Any = None) -> Any:
        """The value, or ``default``."""
        return await asyncio.to_thread(self._db.get_user_value, self.user_id, key_name, default)

    async def set(self, key_name: Key, value: Any) -> None:
        """Store or replace the value; committed when this returns."""
        await asyncio.to_thread(self._db.store_user_value, self.user_id, key_name, value)

    async def delete(self, key_name: Key) -> bool:
        """Delete the value; return whether it existed."""
        try:
            await asyncio.to_thread(self._db.delete_user_value, self.user_id, key_name, "raise")
        except KeyNotFoundError:
            return False
        return True

    async def contains(self, key_name: Key) -> bool:
        """Whether the user has a value under ``key_name``, without reading it."""
        return await asyncio.to_thread(self._db.has_user_value, self.user_id, key_name)

    async def count(self) -> int:
        """How many values the user has."""
        return await asyncio.to_thread(self._db.count_user_values, self.user_id)

    async def keys(self) -> list[Key]:
        """The user's key names: ints in numeric order, then strs."""
        return await asyncio.to_thread(self._db.list_stored_user_keys, self.user_id)

    async def clear(self) -> None:
        """Delete all the user's values, in one transaction."""
        await asyncio.to_thread(self._db.delete_all_user_values, self.user_id)

    async def update_value(
        self, key_name: Key, func: Callable[[Any], Any], default: Any = None
    ) -> Any:
        """Store and return ``func(old or default)`` atomically; ``func`` is a plain function."""
        db = self._db
        return await asyncio.to_thread(db.update_user_value, self.user_id, key_name, func, default)

    def __repr__(self) -> str:
        return f"<AsyncUserValues user_id={self.user_id!r} of {self._db!r}>"


class AsyncInspector:
    """Read-only views for operators, for ``async def`` code; see :class:`.Inspector`.

    :param inspector: the sync inspector.
    """

    def __init__(self, inspector: Inspector) -> None:
        self._inspector = inspector

    async def users(self) -> list[UserSummary]:
        """Every live user with its keys, bytes and last activity."""
        return await asyncio.to_thread(self._inspector.users)

    async def stats(self, check: bool = False) -> Stats:
        """The number of live users, of their values, and their bytes."""
        return await asyncio.to_thread(self._inspector.stats, check)

    async def check(self, progress: Progress | None = None) -> CheckReport:
        """Check the store, changing nothing; see :meth:`.Inspector.check`."""
        return await asyncio.to_thread(self._inspector.check, progress)

    async def user_stats(self, user_id: Key, check: bool = False) -> UserStats:
        """The user's number of values, their bytes, and its last activity."""
        return await asyncio.to_thread(self._inspector.user_stats, user_id, check)

    async def key_sizes(self, user_id: Key) -> dict[Key, int | None]:
        """The user's key names and stored bytes."""
        return await asyncio.to_thread(self._inspector.key_sizes, user_id)

    async def head(self, user_id: Key, key_name: Key, limit: int = 64 * 1024) -> bytes | None:
        """The serializer's tag and the first bytes of a stored value, not decoded."""
        return await asyncio.to_thread(self._inspector.head, user_id, key_name, limit)

    async def value(self, user_id: Key, key_name: Key, *, unpickle: bool = False) -> Any:
        """The stored value; plain data only unless ``unpickle`` (see :meth:`Inspector.value`)."""
        inspector = self._inspector
        return await asyncio.to_thread(inspector.value, user_id, key_name, unpickle=unpickle)

    async def last_activity(self, user_id: Key) -> float | None:
        """The user's last recorded activity, or ``None``."""
        return await asyncio.to_thread(self._inspector.last_activity, user_id)

    async def idle_users(self, older_than: float) -> list[Key]:
        """Users idle for more than ``older_than`` seconds, oldest first."""
        return await asyncio.to_thread(self._inspector.idle_users, older_than)
