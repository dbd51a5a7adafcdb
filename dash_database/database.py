"""The public entry point: :class:`DashDatabase`."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, MutableMapping
from types import TracebackType
from typing import Any

from .backends.base import MISSING, Backend
from .backends.sqlite import SqliteBackend
from .exceptions import DatabaseClosedError, DependencyMissingError, KeyNotFoundError
from .keys import Key, check_key, sort_keys
from .serialization import Codec

#: ``None``, ``":memory:"``, a file path, a Redis URL, or a ``redis.Redis`` client.
Location = str | os.PathLike[str] | None | Any

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

_IF_NOT_EXISTS = ("ignore", "raise")


class DashDatabase:
    """Per-user values kept on the server between Dash callbacks.

    :param db_location: ``None`` for a private temporary file that is removed on
        :meth:`close` (one per process), ``":memory:"`` for this process's
        memory, or the path of a SQLite file shared by every thread and process
        that opens it (use this under gunicorn).
    :param serializer: ``"pickle"`` (any picklable value) or ``"json"`` (JSON
        values only; nothing stored can run code when read).
    :param timeout: seconds a write waits for another process's write to finish
        before it raises :class:`~dash_database.exceptions.StorageError`.
    :param durability: ``"normal"``: a returned write survives a crash of any
        process; ``"full"``: it also survives power loss (one fsync per write).
        SQLite only: a Redis server's durability is its own ``appendfsync``.
    :param prefix: Redis only: the start of every key written (default
        ``"dash_database:"``), so that several apps can share one server.
    :raises ValueError: unknown ``serializer`` or ``durability``, or an option
        that does not apply to this kind of location.
    :raises ~dash_database.exceptions.InvalidLocationError: ``db_location``
        cannot hold a database; nothing was created.
    """

    def __init__(
        self,
        db_location: Location = None,
        *,
        serializer: str = "pickle",
        timeout: float = 30.0,
        durability: str = "normal",
        prefix: str | None = None,
    ) -> None:
        self._closed = False
        # Marks a thread running update_user_value's func, which must not call
        # back: on SQLite it would wait for itself, on Redis retry forever.
        self._local = threading.local()
        self._backend = _open_backend(db_location, Codec(serializer), timeout, durability, prefix)

    def _open(self) -> Backend:
        if getattr(self._local, "updating", False):
            raise RuntimeError(
                "the database was called from inside the func of update_user_value; "
                "call it before or after instead"
            )
        if self._closed:
            raise DatabaseClosedError(f"{self!r} is closed; open a new DashDatabase to use it")
        return self._backend

    def store_user_value(self, user_id: Key, key_name: Key, value: Any) -> None:
        """Store ``value`` under ``key_name`` for ``user_id``, replacing any old value.

        The write is committed, and visible to every process, when this returns.

        :param user_id: the user (or session) id, a ``str`` or an ``int``.
        :param key_name: the value's name, a ``str`` or an ``int``.
        :param value: any picklable value (with ``serializer="json"``, a JSON value).
        :raises TypeError: a bad id or key type, or a value the serializer refuses
            (:class:`~dash_database.exceptions.SerializationError`); nothing changed.
        :raises ~dash_database.exceptions.StorageError: the engine refused the
            write; nothing changed.
        """
        user_id, key_name = check_key("user_id", user_id), check_key("key_name", key_name)
        self._open().set(user_id, key_name, value)

    def get_user_value(self, user_id: Key, key_name: Key, default: Any = None) -> Any:
        """Return the value stored under ``key_name`` for ``user_id``, or ``default``.

        :raises ~dash_database.exceptions.DeserializationError: the stored value
            cannot be read back (written with the other serializer, or damaged).
        """
        user_id, key_name = check_key("user_id", user_id), check_key("key_name", key_name)
        value = self._open().get(user_id, key_name)
        return default if value is MISSING else value

    def list_stored_user_keys(self, user_id: Key) -> list[Key]:
        """Return the user's key names: ints in numeric order, then strs in code-point order."""
        user_id = check_key("user_id", user_id)
        return sort_keys(self._open().keys(user_id))

    def delete_user_value(self, user_id: Key, key_name: Key, if_not_exists: str = "ignore") -> None:
        """Delete one value of the user.

        :param if_not_exists: ``"ignore"`` (do nothing) or ``"raise"`` (raise
            :class:`~dash_database.exceptions.KeyNotFoundError`, a ``KeyError``)
            when there is no such value.
        :raises ValueError: ``if_not_exists`` is neither.
        """
        user_id, key_name = check_key("user_id", user_id), check_key("key_name", key_name)
        if if_not_exists not in _IF_NOT_EXISTS:
            raise ValueError(f"if_not_exists must be 'ignore' or 'raise', not {if_not_exists!r}")
        if not self._open().delete(user_id, key_name) and if_not_exists == "raise":
            raise KeyNotFoundError(f"user_id={user_id!r} has no value named key_name={key_name!r}")

    def delete_all_user_values(self, user_id: Key) -> None:
        """Delete every value of the user, in one transaction."""
        self._open().delete_user(check_key("user_id", user_id))

    def update_user_value(
        self, user_id: Key, key_name: Key, func: Callable[[Any], Any], default: Any = None
    ) -> Any:
        """Store and return ``func(old)``, atomically across threads and processes.

        ``old`` is the stored value, or ``default`` when there is none. ``func``
        runs while the database is locked: keep it short, and do not call the
        database from it.

        :raises Exception: whatever ``func`` raises, or a serialization error;
            in both cases nothing changed.
        """
        user_id, key_name = check_key("user_id", user_id), check_key("key_name", key_name)
        if not callable(func):
            raise TypeError(f"func must be callable, not {type(func).__name__}")
        backend = self._open()
        self._local.updating = True
        try:
            return backend.update(user_id, key_name, func, default)
        finally:
            self._local.updating = False

    def list_users(self) -> list[Key]:
        """Return every user id that holds at least one value, in the order of keys."""
        return sort_keys(self._open().users())

    def user(self, user_id: Key) -> UserValues:
        """Return a live ``MutableMapping`` view of one user's values.

        ``view[key]`` raises :class:`~dash_database.exceptions.KeyNotFoundError`
        (a ``KeyError``) for a missing key; ``view.clear()`` is
        :meth:`delete_all_user_values`.
        """
        return UserValues(self, check_key("user_id", user_id))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Release the database; a temporary file is removed. Calling it again does nothing."""
        if not self._closed:
            self._closed = True
            self._backend.close()

    def __enter__(self) -> DashDatabase:
        self._open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        serializer = self._backend.codec.name
        return f"DashDatabase({self._backend.location!r}, serializer={serializer!r}{state})"


def _open_backend(
    location: Location, codec: Codec, timeout: float, durability: str, prefix: str | None
) -> Backend:
    if (
        location is None
        or isinstance(location, os.PathLike)
        or (isinstance(location, str) and not location.startswith(_REDIS_SCHEMES))
    ):
        if prefix is not None:
            raise ValueError("prefix applies to Redis only; a SQLite file holds one app's data")
        return SqliteBackend(location, codec, timeout=timeout, durability=durability)
    if durability != "normal":
        raise ValueError(
            "durability applies to SQLite only; for Redis set appendonly yes and "
            "appendfsync always on the server"
        )
    try:
        # Imported here: redis is an optional extra.
        from .backends.redis import DEFAULT_PREFIX, RedisBackend
    except ImportError as exc:
        raise DependencyMissingError(
            'Redis support needs the redis package: pip install "dash_database[redis]" '
            '(from a clone: pip install ".[redis]")'
        ) from exc
    prefix = DEFAULT_PREFIX if prefix is None else prefix
    return RedisBackend(location, codec, timeout=timeout, prefix=prefix)


class UserValues(MutableMapping[Key, Any]):
    """One user's values as a ``MutableMapping``; every operation goes to the database.

    :param db: the database.
    :param user_id: the user, already checked.
    """

    def __init__(self, db: DashDatabase, user_id: Key) -> None:
        self._db = db
        self.user_id = user_id

    def __getitem__(self, key_name: Key) -> Any:
        key_name = check_key("key_name", key_name)
        value = self._db._open().get(self.user_id, key_name)
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
        checked = check_key("key_name", key_name)
        return self._db._open().contains(self.user_id, checked)

    def __iter__(self) -> Iterator[Key]:
        return iter(self._db.list_stored_user_keys(self.user_id))

    def __len__(self) -> int:
        return self._db._open().count(self.user_id)

    def clear(self) -> None:
        """Delete all the user's values, in one transaction."""
        self._db.delete_all_user_values(self.user_id)

    def __repr__(self) -> str:
        return f"<UserValues user_id={self.user_id!r} of {self._db!r}>"
