"""One user's values, for ``async def`` code: the async face's twin of :mod:`.user_values`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .exceptions import KeyNotFoundError
from .keys import Key


class AsyncValueStore(Protocol):
    """What an :class:`AsyncUserValues` needs of its database (``AsyncDashDatabase`` has it)."""

    async def get_user_value(self, user_id: Key, key_name: Key, default: Any = None) -> Any: ...
    async def store_user_value(self, user_id: Key, key_name: Key, value: Any) -> None: ...
    async def delete_user_value(
        self, user_id: Key, key_name: Key, if_not_exists: str = "ignore"
    ) -> None: ...
    async def has_user_value(self, user_id: Key, key_name: Key) -> bool: ...
    async def count_user_values(self, user_id: Key) -> int: ...
    async def list_stored_user_keys(self, user_id: Key) -> list[Key]: ...
    async def delete_all_user_values(self, user_id: Key) -> None: ...
    async def update_user_value(
        self, user_id: Key, key_name: Key, func: Callable[[Any], Any], default: Any = None
    ) -> Any: ...


class AsyncUserValues:
    """One user's values, for ``async def`` code: ``await view.get(key)``...

    :param db: the database.
    :param user_id: the user, already checked.
    """

    def __init__(self, db: AsyncValueStore, user_id: Key) -> None:
        self._db = db
        self.user_id = user_id

    async def _ready(self) -> AsyncValueStore:
        """The database, once what this view must wait for is done (the Dash helpers' views
        wait for a session's rotation that is under way)."""
        return self._db

    async def get(self, key_name: Key, default: Any = None) -> Any:
        """The value, or ``default``."""
        db = await self._ready()
        return await db.get_user_value(self.user_id, key_name, default)

    async def set(self, key_name: Key, value: Any) -> None:
        """Store or replace the value; committed when this returns."""
        db = await self._ready()
        await db.store_user_value(self.user_id, key_name, value)

    async def delete(self, key_name: Key) -> bool:
        """Delete the value; return whether it existed."""
        try:
            db = await self._ready()
            await db.delete_user_value(self.user_id, key_name, "raise")
        except KeyNotFoundError:
            return False
        return True

    async def contains(self, key_name: Key) -> bool:
        """Whether the user has a value under ``key_name``, without reading it."""
        db = await self._ready()
        return await db.has_user_value(self.user_id, key_name)

    async def count(self) -> int:
        """How many values the user has."""
        db = await self._ready()
        return await db.count_user_values(self.user_id)

    async def keys(self) -> list[Key]:
        """The user's key names: ints in numeric order, then strs."""
        db = await self._ready()
        return await db.list_stored_user_keys(self.user_id)

    async def clear(self) -> None:
        """Delete all the user's values, in one transaction."""
        db = await self._ready()
        await db.delete_all_user_values(self.user_id)

    async def update_value(
        self, key_name: Key, func: Callable[[Any], Any], default: Any = None
    ) -> Any:
        """Store and return ``func(old or default)`` atomically; ``func`` is a plain function."""
        db = await self._ready()
        return await db.update_user_value(self.user_id, key_name, func, default)

    def __repr__(self) -> str:
        return f"<AsyncUserValues user_id={self.user_id!r} of {self._db!r}>"
