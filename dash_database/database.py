"""The public entry point: :class:`DashDatabase`."""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Callable, Iterator, MutableMapping
from types import TracebackType
from typing import Any

from . import sessions
from .backends.base import MISSING, Backend
from .backends.sqlite import SqliteBackend
from .exceptions import (
    DatabaseClosedError,
    DependencyMissingError,
    KeyNotFoundError,
    QuotaExceededError,
)
from .keys import Key, check_key, sort_keys
from .serialization import Codec
from .sessions import Stats, UserStats, to_seconds

logger = logging.getLogger("dash_database")

#: ``None``, ``":memory:"``, a file path, a Redis URL, or a ``redis.Redis`` client.
Location = str | os.PathLike[str] | None | Any

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

_IF_NOT_EXISTS = ("ignore", "raise")

#: Activity is written at most once per this fraction of ``expire_after``
#: per user and process, so that reads stay reads.
REFRESH_FRACTION = 1 / 16
#: ...and at least this often (seconds), for last-activity figures without expiry.
MAX_REFRESH_SECONDS = 60.0
#: Background purging deletes at most this many expired users per call, and
#: runs at most once per refresh interval in each process.
PURGE_BATCH = 10
#: Past this many users, the per-process activity cache starts over.
_SEEN_CACHE_SIZE = 100_000

Duration = float | datetime.timedelta
#: Called with the running count of a long operation.
Progress = Callable[[int], None]


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
    :param expire_after: seconds or a ``timedelta``: a user with no read or
        write for that long is dropped (invisible at once, space reclaimed by
        :meth:`purge_expired` and in the background). ``None``: never.
    :param max_keys_per_user: refuse a write that would give a user more values.
    :param max_bytes_per_user: refuse a write that would make a user's values
        take more bytes, serialized.
    :param max_total_bytes: refuse a write that would make the whole store take
        more bytes (each write then sums the store: meant for small stores).
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
        expire_after: Duration | None = None,
        max_keys_per_user: int | None = None,
        max_bytes_per_user: int | None = None,
        max_total_bytes: int | None = None,
    ) -> None:
        self._closed = False
        self._expire_after = (
            None if expire_after is None else to_seconds("expire_after", expire_after)
        )
        self._refresh = min(MAX_REFRESH_SECONDS, (self._expire_after or 1e9) * REFRESH_FRACTION)
        self._quotas = {
            name: _check_limit(name, limit)
            for name, limit in (
                ("max_keys_per_user", max_keys_per_user),
                ("max_bytes_per_user", max_bytes_per_user),
                ("max_total_bytes", max_total_bytes),
            )
            if limit is not None
        }
        # The last activity this process recorded or read per user: never later
        # than the stored one, so a fresh entry proves the user is not idle.
        self._seen: dict[Key, float] = {}
        self._next_purge = 0.0
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

    def _user(self, user_id: Key, write: bool = False) -> Backend:
        """The open backend, after recording the user's activity and dropping it if expired."""
        backend = self._open()
        when = sessions.now()
        cached = self._seen.get(user_id)
        if cached is None or when - cached >= self._refresh:
            seen = backend.seen(user_id)
            if seen is not None and self._is_expired(seen, when):
                backend.delete_idle_user(user_id, when - self._grace())
                seen = None
            stale = seen is None or when - seen >= self._refresh
            # A read never creates a user's record: unknown ids leave no trace.
            if stale and (write or seen is not None):
                backend.mark_seen(user_id, when, create=write)
                seen = when
            if seen is not None:
                if len(self._seen) >= _SEEN_CACHE_SIZE:
                    self._seen.clear()
                self._seen[user_id] = seen
        if self._expire_after is not None and when >= self._next_purge:
            self._next_purge = when + self._refresh
            self._purge(backend, when - self._grace(), PURGE_BATCH)
        return backend

    def _grace(self) -> float:
        # Activity is written up to one refresh interval late, so a user counts
        # as idle only after expire_after plus that interval: never too early.
        assert self._expire_after is not None
        return self._expire_after + self._refresh

    def _is_expired(self, seen: float, when: float) -> bool:
        return self._expire_after is not None and seen < when - self._grace()

    def _purge(
        self, backend: Backend, cutoff: float, limit: int | None, progress: Progress | None = None
    ) -> int:
        removed = 0
        while limit is None or removed < limit:
            batch = backend.idle_users(cutoff, PURGE_BATCH if limit is None else limit - removed)
            if not batch:
                break
            for user_id in batch:
                removed += backend.delete_idle_user(user_id, cutoff)
                self._seen.pop(user_id, None)
                if progress is not None:
                    progress(removed)
        if removed:
            logger.info("%s: purged %d idle users", backend.location, removed)
        return removed

    def _check_quotas(self, backend: Backend, user_id: Key, key_name: Key) -> Callable[[Any], None]:
        """Check the key quota now; return the check of a new value against the byte quotas."""
        if not self._quotas:
            return _no_quota
        old = {key: size for _, key, size in backend.value_sizes(user_id)}
        limit = self._quotas.get("max_keys_per_user")
        if limit is not None and key_name not in old and len(old) + 1 > limit:
            raise QuotaExceededError(
                f"max_keys_per_user={limit}: user_id={user_id!r} already has {len(old)} values; "
                f"storing key_name={key_name!r} would make {len(old) + 1}. Nothing was stored; "
                "delete some of its values or raise the limit"
            )
        user_limit = self._quotas.get("max_bytes_per_user")
        total_limit = self._quotas.get("max_total_bytes")
        if user_limit is None and total_limit is None:
            return _no_quota
        kept = sum(old.values()) - old.get(key_name, 0)
        total = None
        if total_limit is not None:
            total = sum(size for *_, size in backend.value_sizes(None)) - old.get(key_name, 0)

        def check(value: Any) -> None:
            size = backend.codec.size(value)
            for name, limit, after in (
                ("max_bytes_per_user", user_limit, kept + size),
                ("max_total_bytes", total_limit, None if total is None else total + size),
            ):
                if limit is not None and after is not None and after > limit:
                    whose = (
                        f"user_id={user_id!r}'s values"
                        if name == "max_bytes_per_user"
                        else "the store"
                    )
                    raise QuotaExceededError(
                        f"{name}={limit:,}: the value for key_name={key_name!r} takes "
                        f"{size:,} bytes and would make {whose} take {after:,} bytes. "
                        "Nothing was stored; delete values or raise the limit"
                    )

        return check

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
        backend = self._user(user_id, write=True)
        self._check_quotas(backend, user_id, key_name)(value)
        backend.set(user_id, key_name, value)

    def get_user_value(self, user_id: Key, key_name: Key, default: Any = None) -> Any:
        """Return the value stored under ``key_name`` for ``user_id``, or ``default``.

        :raises ~dash_database.exceptions.DeserializationError: the stored value
            cannot be read back (written with the other serializer, or damaged).
        """
        user_id, key_name = check_key("user_id", user_id), check_key("key_name", key_name)
        value = self._user(user_id).get(user_id, key_name)
        return default if value is MISSING else value

    def list_stored_user_keys(self, user_id: Key) -> list[Key]:
        """Return the user's key names: ints in numeric order, then strs in code-point order."""
        user_id = check_key("user_id", user_id)
        return sort_keys(self._user(user_id).keys(user_id))

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
        if not self._user(user_id).delete(user_id, key_name) and if_not_exists == "raise":
            raise KeyNotFoundError(f"user_id={user_id!r} has no value named key_name={key_name!r}")

    def delete_all_user_values(self, user_id: Key) -> None:
        """Delete every value of the user, in one transaction."""
        user_id = check_key("user_id", user_id)
        self._open().delete_user(user_id)
        self._seen.pop(user_id, None)

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
        backend = self._user(user_id, write=True)
        check = self._check_quotas(backend, user_id, key_name)

        def checked(old: Any) -> Any:
            new = func(old)
            check(new)
            return new

        self._local.updating = True
        try:
            return backend.update(user_id, key_name, checked, default)
        finally:
            self._local.updating = False

    def list_users(self) -> list[Key]:
        """Return every user id that holds at least one value, in the order of keys."""
        backend = self._open()
        users = backend.users()
        if self._expire_after is not None:
            seen, when = backend.sessions(), sessions.now()
            users = [user for user in users if not self._is_expired(seen.get(user, when), when)]
        return sort_keys(users)

    def touch(self, user_id: Key) -> None:
        """Record activity for the user now, extending its session, without reading its values."""
        user_id = check_key("user_id", user_id)
        backend = self._user(user_id)
        backend.mark_seen(user_id, sessions.now(), create=False)

    def purge_expired(
        self, older_than: Duration | None = None, progress: Progress | None = None
    ) -> int:
        """Delete every user idle past ``expire_after``; return how many were deleted.

        Users stored before their activity was recorded get it recorded now, and
        side files left by writers that died before committing (an hour old, or
        twice ``timeout`` if longer) are removed.

        :param older_than: seconds or a ``timedelta`` to use instead of
            ``expire_after`` (the CLI's ``purge --older-than``).
        :param progress: called with the running count after each deleted user.
        :raises ValueError: neither ``older_than`` nor ``expire_after`` is set.
        """
        if older_than is None and self._expire_after is None:
            raise ValueError("pass older_than, or open the database with expire_after")
        backend = self._open()
        when = sessions.now()
        recorded = backend.sessions()
        for user_id in backend.users():
            if user_id not in recorded:
                backend.mark_seen(user_id, when, create=True)
        cutoff = when - (
            to_seconds("older_than", older_than) if older_than is not None else self._grace()
        )
        removed = self._purge(backend, cutoff, None, progress)
        backend.collect_garbage()
        return removed

    def stats(self) -> Stats:
        """Return the number of users, of values, and their bytes (expired users excluded)."""
        backend = self._open()
        live = set(self.list_users())
        sizes = [size for user, _, size in backend.value_sizes(None) if user in live]
        return Stats(users=len(live), keys=len(sizes), bytes=sum(sizes))

    def user_stats(self, user_id: Key) -> UserStats:
        """Return the user's number of values, their bytes, and its last activity (no reading)."""
        user_id = check_key("user_id", user_id)
        backend = self._open()
        seen = backend.seen(user_id)
        if seen is not None and self._is_expired(seen, sessions.now()):
            return UserStats(keys=0, bytes=0, last_activity=None)
        sizes = [size for *_, size in backend.value_sizes(user_id)]
        return UserStats(keys=len(sizes), bytes=sum(sizes), last_activity=seen)

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


def _no_quota(value: Any) -> None:
    """The byte-quota check when no byte quota is set: every value fits."""


def _check_limit(name: str, limit: Any) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise TypeError(f"{name} must be an int or None, not {type(limit).__name__}")
    if limit < 1:
        raise ValueError(f"{name} must be at least 1, not {limit}")
    return limit


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
        value = self._db._user(self.user_id).get(self.user_id, key_name)
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
        return self._db._user(self.user_id).contains(self.user_id, checked)

    def __iter__(self) -> Iterator[Key]:
        return iter(self._db.list_stored_user_keys(self.user_id))

    def __len__(self) -> int:
        return self._db._user(self.user_id).count(self.user_id)

    def clear(self) -> None:
        """Delete all the user's values, in one transaction."""
        self._db.delete_all_user_values(self.user_id)

    def __repr__(self) -> str:
        return f"<UserValues user_id={self.user_id!r} of {self._db!r}>"
