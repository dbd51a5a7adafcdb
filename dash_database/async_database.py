"""The public entry point: :class:`AsyncDashDatabase`, argument checks and one engine call each.

Both faces come from one text: it is written as async code, and
``tools/unasync.py`` writes the sync face from it (as httpcore writes its sync
code), so that both check the same arguments, decide about activity by the same
rule, and make the same engine call. On Redis the async face talks to the server
on the event loop, with no thread; it reaches a SQLite engine through one thread
hop per call (:mod:`.backends.threaded`).

Each public call checks the closed state and its arguments, asks the
:class:`~.activity.Activity` what it must do about the user's activity, makes
one call to the engine (:mod:`.backends.base` lists which), which applies that
activity and checks the :class:`~.quotas.Quotas` in the same transaction, and
tells the ``Activity`` what the engine reported. An :class:`~.inspection.Inspector`
holds the operators' read-only views.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
from collections.abc import Callable, Iterable
from typing import Any

from . import async_checking, async_concurrency, async_purging, clock, compression
from .activity import PURGE_BATCH, Activity, Progress, Touch
from .async_converting import convert_to_data
from .async_copying import copy_records
from .async_inspection import AsyncInspector
from .async_resigning import sign_values, upgrade_legacy
from .async_user_values import AsyncUserValues
from .backends.async_base import AsyncBackend
from .backends.async_locations import async_open_backend
from .backends.locations import Location
from .backends.threaded import ThreadedBackend  # async only
from .clock import to_seconds
from .database import DashDatabase  # async only
from .exceptions import (
    DatabaseClosedError,
    KeyNotFoundError,
    ReentrantCallError,
    StorageError,
)
from .keys import MISSING, Key, check_key, sort_keys
from .quotas import Quotas
from .reports import ConvertReport, CopyReport, RepairReport, SignReport
from .serialization import Codec
from .signing import SecretKey, Signer
from .stats import Stats, UserStats

logger = logging.getLogger("dash_database")

_IF_NOT_EXISTS = ("ignore", "raise")

# The databases inside update_user_value in this context: its func (and the
# pickling around it) must not call them back, since on SQLite it would wait
# for itself and on Redis retry until the timeout. A context variable, not a
# thread-local: each asyncio task has its own, and the threads the async face
# uses get their caller's.
_UPDATING: contextvars.ContextVar[frozenset[int]] = contextvars.ContextVar(
    "dash_database_updating", default=frozenset()
)

Duration = float | datetime.timedelta


class AsyncDashDatabase:
    """Per-user values kept on the server between Dash callbacks.

    :param db_location: ``None``: a private temporary file (one per process);
        ``":memory:"``: this process's memory; a SQLite file path, shared by every
        thread and process that opens it (under gunicorn); a ``redis://`` URL; or a
        ``postgresql://`` (or ``postgres://``) URL (the ``postgres`` extra).
    :param serializer: ``"pickle"`` (any picklable value), ``"json"`` (JSON
        values only), or ``"data"`` (JSON values, bytes, dates, tuples and sets,
        DataFrames, Series and NumPy arrays, in formats that never run code when
        read: :mod:`.dataformats`).
    :param timeout: seconds a write waits for another's lock (on Redis, for a
        contended update) before :class:`~dash_database.exceptions.StorageError`.
    :param durability: SQLite only: ``"normal"`` survives a crash of any
        process, ``"full"`` also power loss (one fsync per write).
    :param prefix: Redis only: the start of every key (default ``"dash_database:"``).
    :param schema: PostgreSQL only: the schema the store lives in, made on first use
        (default ``"dash_database"``; never ``public``).
    :param expire_after: seconds or a ``timedelta``: a user idle that long is
        dropped (at once for readers, on disk by :meth:`purge_expired`).
    :param max_keys_per_user: refuse a write that would give a user more values.
    :param max_bytes_per_user: ... that would make a user's values take more bytes.
    :param max_total_bytes: ... that would make the whole store take more bytes.
    :param secret_key: sign every value, and refuse to read one that is unsigned,
        altered or moved (:mod:`.signing`); in a list, the first signs, all verify.
    :param compress: ``"zstd"``: compress each value written (the ``zstd`` extra);
        values written either way read back (:mod:`.compression`).
    :param compress_level: the zstd level (default 3).
    :param checksum: each unsigned value written carries a checksum, checked on every
        read, so that damage raises :class:`~dash_database.exceptions.DeserializationError`
        instead of reading back as another value (:mod:`.checksums`). ``False`` writes
        unsigned pickle and JSON values as 2.3 and older do, for a store that processes
        of those versions still read (a rolling upgrade). Values written either way read
        back.
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
        schema: str | None = None,
        expire_after: Duration | None = None,
        max_keys_per_user: int | None = None,
        max_bytes_per_user: int | None = None,
        max_total_bytes: int | None = None,
        secret_key: SecretKey | None = None,
        compress: str | None = None,
        compress_level: int | None = None,
        checksum: bool = True,
    ) -> None:
        expiry = None if expire_after is None else to_seconds("expire_after", expire_after)
        compression.check(compress, compress_level)
        signer = None if secret_key is None else Signer(secret_key)
        codec = Codec(serializer, False, signer, compress, compress_level, checksum)
        quotas = Quotas(max_keys_per_user, max_bytes_per_user, max_total_bytes)
        backend = async_open_backend(
            db_location,
            codec,
            quotas if any(quotas.limits()) else None,
            timeout=timeout,
            durability=durability,
            prefix=prefix,
            schema=schema,
        )
        self._start(backend, Activity(expiry))
        # begin async only
        # What .sync opens on Redis: the same store, over a sync client of its own.
        self._arguments: tuple[Location, dict[str, Any]] = (
            db_location,
            {
                "serializer": serializer,
                "timeout": timeout,
                "prefix": prefix,
                "schema": schema,
                "expire_after": expire_after,
                "max_keys_per_user": max_keys_per_user,
                "max_bytes_per_user": max_bytes_per_user,
                "max_total_bytes": max_total_bytes,
                "secret_key": secret_key,
                "compress": compress,
                "compress_level": compress_level,
                "checksum": checksum,
            },
        )
        # end async only

    def _start(self, backend: AsyncBackend, activity: Activity) -> None:
        """Hold an opened engine, and what this process learns of its users' activity."""
        self._closed = False
        self._backend, self._activity = backend, activity
        #: Read-only views for operators; see :class:`~dash_database.inspection.Inspector`.
        self.inspect = AsyncInspector(self._open, activity)
        self._sync: DashDatabase | None = None  # async only

    def _open(self) -> AsyncBackend:
        if id(self) in _UPDATING.get():
            raise ReentrantCallError(
                "the database was called from inside the func of update_user_value, or while "
                "its value was pickled or unpickled; call it before or after instead"
            )
        if self._closed:
            face = type(self).__name__
            raise DatabaseClosedError(f"{self!r} is closed; open a new {face} to use it")
        return self._backend

    # Each call checks, in this order: the closed state, the arguments, then decides
    # about the user's activity (a pure decision), so that a refused call leaves no trace.
    def _user(self, user_id: Key, write: bool = False) -> tuple[AsyncBackend, Key, Touch | None]:
        backend, user_id = self._open(), check_key("user_id", user_id)
        return backend, user_id, self._activity.decide(user_id, write)

    def _value(
        self, user_id: Key, key_name: Key, write: bool = False
    ) -> tuple[AsyncBackend, Key, Key, Touch | None]:
        backend, user_id, touch = self._user(user_id, write)
        return backend, user_id, check_key("key_name", key_name), touch

    async def _learn(self, user_id: Key, seen: float | None) -> None:
        """Note what the engine reported; once per refresh interval, purge a few idle users."""
        if seen is not None:
            self._activity.learn(user_id, seen)
        if self._activity.expire_after is not None:
            cutoff = self._activity.purge_due()
            if cutoff is None:
                return
            try:
                await async_purging.purge(self._backend, self._activity, cutoff, PURGE_BATCH)
            except StorageError as exc:
                # The call itself succeeded: a purge that cannot run now (a read-only
                # volume, a server gone for a moment) must not fail it. The next one retries.
                logger.warning("background purge of idle users skipped: %s", exc)

    async def store_user_value(self, user_id: Key, key_name: Key, value: Any) -> None:
        """Store ``value`` (picklable; with ``serializer="json"``, a JSON value) under ``key_name``
        for ``user_id``, replacing any old value; committed when this returns.

        :raises TypeError: a bad id or key type, or a value the serializer refuses
            (:class:`~dash_database.exceptions.SerializationError`); nothing changed.
        :raises ~dash_database.exceptions.QuotaExceededError: it would pass a quota.
        :raises ~dash_database.exceptions.StorageError: the engine refused it.
        """
        backend, user_id, key_name, touch = self._value(user_id, key_name, write=True)
        await self._learn(user_id, await backend.set(user_id, key_name, value, touch))

    async def get_user_value(self, user_id: Key, key_name: Key, default: Any = None) -> Any:
        """Return the value stored under ``key_name`` for ``user_id``, or ``default``.

        :raises ~dash_database.exceptions.DeserializationError: the stored value cannot
            be read back (the other serializer's, damaged, or, with a key, not signed by it).
        """
        backend, user_id, key_name, touch = self._value(user_id, key_name)
        value, seen = await backend.get(user_id, key_name, touch)
        await self._learn(user_id, seen)
        return default if value is MISSING else value

    async def has_user_value(self, user_id: Key, key_name: Key) -> bool:
        """Whether the user has a value under ``key_name``, without reading it."""
        backend, user_id, key_name, touch = self._value(user_id, key_name)
        found, seen = await backend.contains(user_id, key_name, touch)
        await self._learn(user_id, seen)
        return found

    async def count_user_values(self, user_id: Key) -> int:
        """How many values the user has, without reading them."""
        return len(await self._keys(user_id))

    async def list_stored_user_keys(self, user_id: Key) -> list[Key]:
        """Return the user's key names: ints in numeric order, then strs in code-point order."""
        return sort_keys(await self._keys(user_id))

    async def _keys(self, user_id: Key) -> list[Key]:
        backend, user_id, touch = self._user(user_id)
        keys, seen = await backend.keys(user_id, touch)
        await self._learn(user_id, seen)
        return keys

    async def delete_user_value(
        self, user_id: Key, key_name: Key, if_not_exists: str = "ignore"
    ) -> None:
        """Delete one value of the user.

        :param if_not_exists: for a missing value, ``"ignore"`` or ``"raise"``
            :class:`~dash_database.exceptions.KeyNotFoundError` (a ``KeyError``).
        :raises ValueError: ``if_not_exists`` is neither.
        """
        if if_not_exists not in _IF_NOT_EXISTS:
            raise ValueError(f"if_not_exists must be 'ignore' or 'raise', not {if_not_exists!r}")
        backend, user_id, key_name, touch = self._value(user_id, key_name)
        deleted, seen = await backend.delete(user_id, key_name, touch)
        await self._learn(user_id, seen)
        if not deleted and if_not_exists == "raise":
            raise KeyNotFoundError(f"user_id={user_id!r} has no value named key_name={key_name!r}")

    async def delete_all_user_values(self, user_id: Key) -> None:
        """Delete every value of the user, and its activity, in one transaction."""
        backend, user_id = self._open(), check_key("user_id", user_id)
        await backend.delete_user(user_id)
        self._activity.forget(user_id)

    async def rename_user(self, old_id: Key, new_id: Key) -> int:
        """Move a user's values and activity to a new id, atomically (for session rotation at
        login); large values are not copied. Return how many values moved.

        :raises ValueError: ``old_id == new_id``, or ``new_id`` already has values
            (:class:`~dash_database.exceptions.UserExistsError`); nothing changed.
        """
        backend, old_id = self._open(), check_key("old_id", old_id)
        if old_id == check_key("new_id", new_id) and type(old_id) is type(new_id):
            raise ValueError(f"old_id and new_id are both {old_id!r}; pass a new id")
        self._activity.forget(old_id, new_id)
        cutoff = self._activity.cutoff(clock.now())
        if cutoff is not None:
            # Users idle past expiry are invisible: neither one moves, nor is in the way.
            for user_id in (old_id, new_id):
                await backend.delete_idle_user(user_id, cutoff)
        await upgrade_legacy(backend, old_id)
        return await backend.rename_user(old_id, new_id)

    async def update_user_value(
        self, user_id: Key, key_name: Key, func: Callable[[Any], Any], default: Any = None
    ) -> Any:
        """Store and return ``func(old)``, atomically across threads and processes.

        ``old`` is the stored value, or ``default``. ``func`` runs while the database
        is locked: keep it short, and do not call the database from it.

        :raises Exception: whatever ``func`` raises, a serialization error, or, on
            Redis, :class:`~dash_database.exceptions.StorageError` if other clients kept
            changing the value for longer than ``timeout``; nothing changed.
        """
        if not callable(func):
            raise TypeError(f"func must be callable, not {type(func).__name__}")
        backend, user_id, key_name, touch = self._value(user_id, key_name, write=True)
        token = _UPDATING.set(_UPDATING.get() | {id(self)})
        try:
            new, seen = await backend.update(user_id, key_name, func, default, touch)
        finally:
            _UPDATING.reset(token)
        await self._learn(user_id, seen)
        return new

    async def copy_to(
        self,
        destination: AsyncDashDatabase | DashDatabase,
        users: Iterable[Key] | None = None,
        overwrite: bool = False,
        progress: Progress | None = None,
    ) -> CopyReport:
        """Copy users' values, as stored, and activity to another store (:mod:`.copying`)."""
        if isinstance(destination, DashDatabase):  # async only
            destination = AsyncDashDatabase._over(destination)  # async only
        return await copy_records(self._open(), destination._open(), users, overwrite, progress)

    async def sign_values(
        self, progress: Progress | None = None, *, trust_unsigned: bool = False
    ) -> SignReport:
        """Sign again with the first ``secret_key`` every value another key in it signed,
        on the stored bytes; refuse and list the rest (:func:`.resigning.sign_values`).

        :param trust_unsigned: sign unsigned values too, trusting each one as it is.
        """
        return await sign_values(self._open(), progress, trust_unsigned)

    async def convert_to_data(
        self,
        *,
        trust_pickles: bool = False,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> ConvertReport:
        """Rewrite every pickled value in a code-free format (``serializer="data"``), then
        open the store with ``serializer="data"`` (:mod:`.converting`).

        :param trust_pickles: must be ``True``: converting unpickles every value, which
            runs whatever code each pickle names.
        :param dry_run: unpickle and check each value, and write nothing.
        :raises ValueError: ``trust_pickles`` is not ``True``.
        """
        if trust_pickles is not True:
            raise ValueError(
                "convert_to_data unpickles every value in the store, which runs whatever code "
                "each pickle names: pass trust_pickles=True if you trust every one (with a "
                "secret_key, only signed values are unpickled)"
            )
        return await convert_to_data(self._open(), dry_run, progress)

    async def repair(
        self, *, dry_run: bool = False, progress: Progress | None = None
    ) -> RepairReport:
        """Repair the store: drop every value whose data is missing or damaged (as
        ``inspect.check()`` finds them, reading nothing it runs), rebuild the counters from
        the values, and remove what dead writers left (:mod:`.checking`).

        :param dry_run: find and report, change nothing.
        :param progress: called with the running count of values checked.
        """
        backend = self._open()
        return await async_checking.repair(backend, backend.codec, dry_run, progress)

    async def list_users(self) -> list[Key]:
        """Return every user id that holds at least one value, in the order of keys."""
        return sort_keys(await async_purging.live_users(self._open(), self._activity))

    async def touch(self, user_id: Key) -> None:
        """Record activity for the user now, extending its session, without reading its values."""
        backend, user_id = self._open(), check_key("user_id", user_id)
        # Whatever this process learned lately: a user idle past expiry is dropped,
        # one with activity gets now, and one without stays without.
        touch = self._activity.decide(user_id, False, force=True)
        _, seen = await backend.contains(user_id, "", touch)
        await self._learn(user_id, seen)

    async def purge_expired(
        self, older_than: Duration | None = None, progress: Progress | None = None
    ) -> int:
        """Delete every user idle past ``expire_after``; return how many were deleted.

        Also records activity for users stored without it, and removes dead writes' files.

        :param older_than: seconds or a ``timedelta`` instead of ``expire_after``.
        :param progress: called with the running count after each deleted user.
        :raises ValueError: neither ``older_than`` nor ``expire_after`` is set.
        """
        backend = self._open()
        if older_than is None and self._activity.expire_after is None:
            raise ValueError("pass older_than, or open the database with expire_after")
        idle = None if older_than is None else to_seconds("older_than", older_than)
        removed = await async_purging.purge_all(backend, self._activity, idle, progress)
        await backend.collect_garbage()
        return removed

    async def stats(self) -> Stats:
        """Return the number of users, of values, and their bytes (expired users excluded)."""
        return await self.inspect.stats()

    async def user_stats(self, user_id: Key) -> UserStats:
        """Return the user's number of values, their bytes, and its last activity."""
        return await self.inspect.user_stats(user_id)

    def user(self, user_id: Key) -> AsyncUserValues:
        """Return a view of one user's values (:mod:`.user_values`)."""
        return AsyncUserValues(self, check_key("user_id", user_id))

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    async def close(self) -> None:
        """Release the database; a temporary file is removed. Calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        # begin async only
        if self._sync is not None:
            # The sync face releases what it holds: its own Redis client, or the very
            # SQLite engine under this face, which must be closed once.
            await async_concurrency.run(self._sync.close)
            if isinstance(self._backend, ThreadedBackend):
                return
        # end async only
        await self._backend.aclose()

    async def __aenter__(self) -> AsyncDashDatabase:
        self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # begin async only
    @classmethod
    def _over(cls, db: DashDatabase) -> AsyncDashDatabase:
        """The async face of a sync one's store, each engine call on a thread (the Dash
        helpers' ``async def`` callbacks when the app opened a :class:`DashDatabase`)."""
        face = cls.__new__(cls)
        face._start(ThreadedBackend(db._backend), db._activity)
        face._sync = db
        return face

    @property
    def sync(self) -> DashDatabase:
        """The sync face over the same store, for code that is not async: over the same
        SQLite engine, or a Redis client (PostgreSQL pool) of its own; made on first use."""
        if self._sync is None:
            self._open()
            if isinstance(self._backend, ThreadedBackend):
                self._sync = DashDatabase.__new__(DashDatabase)
                self._sync._start(self._backend.engine, self._activity)
            else:
                location, options = self._arguments
                self._sync = DashDatabase(location, **options)
        return self._sync

    # end async only
    def __repr__(self) -> str:
        state, serializer = (", closed" if self._closed else ""), self._backend.codec.name
        face, location = type(self).__name__, self._backend.location
        return f"{face}({location!r}, serializer={serializer!r}{state})"
