"""The small contract every storage engine implements.

:class:`~dash_database.DashDatabase` checks arguments and the closed state,
then calls exactly one of these methods. The contract test suite runs
unchanged over every subclass.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Callable
from typing import Any

from ..keys import Key
from ..serialization import Codec


class Missing(enum.Enum):
    """Marks "no value stored" where ``None`` is a valid stored value."""

    MISSING = enum.auto()


MISSING = Missing.MISSING


class Backend(abc.ABC):
    """One storage engine for per-user values.

    :param codec: turns values into bytes and back.
    """

    #: Where the data lives, as shown by ``repr(db)`` (never with a password).
    location: str

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    @abc.abstractmethod
    def get(self, user_id: Key, key_name: Key) -> Any:
        """Return the stored value, or :data:`MISSING`."""

    @abc.abstractmethod
    def contains(self, user_id: Key, key_name: Key) -> bool:
        """Whether a value is stored, without reading it."""

    @abc.abstractmethod
    def set(self, user_id: Key, key_name: Key, value: Any) -> None:
        """Store ``value``; committed when this returns."""

    @abc.abstractmethod
    def update(self, user_id: Key, key_name: Key, func: Callable[[Any], Any], default: Any) -> Any:
        """Atomically store and return ``func(old value or default)``."""

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
        """Delete all the user's values in one transaction; return how many."""

    @abc.abstractmethod
    def users(self) -> list[Key]:
        """Every user id holding at least one value, in no particular order."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and files; called once."""
