"""One user's values as a ``MutableMapping``: ``db.user(user_id)``."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any, Protocol

from .exceptions import KeyNotFoundError
from .keys import MISSING, Key, check_key


class ValueStore(Protocol):
    """What a :class:`UserValues` needs of its database (``DashDatabase`` has it)."""

    def get_user_value(self, user_id: Key, key_name: Key, default: Any = None) -> Any: ...
    def store_user_value(self, user_id: Key, key_name: Key, value: Any) -> None: ...
    def delete_user_value(
        self, user_id: Key, key_name: Key, if_not_exists: str = "ignore"
    ) -> None: ...
    def has_user_value(self, user_id: Key, key_name: Key) -> bool: ...
    def count_user_values(self, user_id: Key) -> int: ...
    def list_stored_user_keys(self, user_id: Key) -> list[Key]: ...
    def delete_all_user_values(self, user_id: Key) -> None: ...


class UserValues(MutableMapping[Key, Any]):
    """One user's values as a ``MutableMapping``; every operation goes to the database.

    :param db: the database.
    :param user_id: the user, already checked.
    """

    def __init__(self, db: ValueStore, user_id: Key) -> None:
        self._db = db
        self.user_id = user_id

    def __getitem__(self, key_name: Key) -> Any:
        value = self._db.get_user_value(self.user_id, key_name, MISSING)
        if value is MISSING:
            raise KeyNotFoundError(f"user_id={self.user_id!r} has no value named {key_name!r}")
        return value

    def get(self, key_name: Key, default: Any = None) -> Any:
        """Return the value, or ``default``."""
        return self._db.get_user_value(self.user_id, key_name, default)

    def __setitem__(self, key_name: Key, value: Any) -> None:
        self._db.store_user_value(self.user_id, key_name, value)

    def __delitem__(self, key_name: Key) -> None:
        self._db.delete_user_value(self.user_id, key_name, if_not_exists="raise")

    def __contains__(self, key_name: object) -> bool:
        # Answered from the index, without reading (maybe large) values.
        return self._db.has_user_value(self.user_id, check_key("key_name", key_name))

    def __iter__(self) -> Iterator[Key]:
        return iter(self._db.list_stored_user_keys(self.user_id))

    def __len__(self) -> int:
        return self._db.count_user_values(self.user_id)

    def clear(self) -> None:
        """Delete all the user's values, in one transaction."""
        self._db.delete_all_user_values(self.user_id)

    def __repr__(self) -> str:
        return f"<UserValues user_id={self.user_id!r} of {self._db!r}>"
