"""Activity and expiry: when each user was last seen, and dropping idle users.

Every read or write records the user's activity, at most once per refresh
interval per user and process, so that reads stay reads. With
``expire_after``, a user idle for longer is dropped: invisible at once, and
deleted by :meth:`Activity.purge`, a few at a time in the background of other
calls, or all at once by ``purge_expired``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from . import sessions
from .backends.base import Backend, Touch
from .keys import Key

logger = logging.getLogger("dash_database")

#: Activity is written at most once per this fraction of ``expire_after``
#: per user and process, so that reads stay reads.
REFRESH_FRACTION = 1 / 16
#: ...and at least this often (seconds), for last-activity figures without expiry.
MAX_REFRESH_SECONDS = 60.0
#: Background purging deletes at most this many expired users per call, and
#: runs at most once per refresh interval in each process.
PURGE_BATCH = 10
#: Past this many users, the per-process activity cache starts over.
SEEN_CACHE_SIZE = 100_000

#: Called with the running count of a long operation.
Progress = Callable[[int], None]


class Activity:
    """One database's activity bookkeeping, shared by its threads.

    :param expire_after: seconds of inactivity after which a user is dropped,
        or ``None`` for never.
    """

    def __init__(self, expire_after: float | None) -> None:
        self.expire_after = expire_after
        self.refresh = min(MAX_REFRESH_SECONDS, (expire_after or 1e9) * REFRESH_FRACTION)
        # Threads share both fields below. Reading either is one step under the
        # GIL; the lock makes each change, and the purge's check-and-set, one
        # step, so that only one thread per interval starts a purge.
        self._lock = threading.Lock()
        # The last activity this process recorded or read per user: never later
        # than the stored one, so a fresh entry proves the user is not idle.
        self._seen: dict[Key, float] = {}
        self._next_purge = 0.0

    def grace(self) -> float:
        """How long a user must be idle to be dropped, in seconds."""
        # Activity is written up to one refresh interval late, so a user counts
        # as idle only after expire_after plus that interval: never too early.
        assert self.expire_after is not None
        return self.expire_after + self.refresh

    def is_expired(self, seen: float, when: float) -> bool:
        """Whether a user last active at ``seen`` is dropped at ``when``."""
        return self.expire_after is not None and seen < when - self.grace()

    def record(
        self, backend: Backend, user_id: Key, write: bool, carry: bool = False
    ) -> Touch | None:
        """Record that ``user_id`` reads (or, if ``write``, writes) now; drop it first if expired.

        A read never creates a user's record: unknown ids leave no trace.

        :param carry: the caller's next engine call can take a :class:`Touch`: if the engine
            takes one, return it instead of recording here (one round trip less on Redis;
            on SQLite one commit, and no read first); the caller then reports success to
            :meth:`carried`.
        """
        when = sessions.now()
        cached = self._seen.get(user_id)
        purge_due = self.expire_after is not None and when >= self._next_purge
        if purge_due:
            with self._lock:  # checked again: one thread per interval starts a purge
                purge_due = when >= self._next_purge
                if purge_due:
                    self._next_purge = when + self.refresh
        touch = None
        if cached is not None and when - cached < self.refresh:
            pass  # recorded lately by this process: not idle, nothing to record
        elif carry and (backend.takes_touch or (write and backend.writes_take_touch)):
            cutoff = None if self.expire_after is None else when - self.grace()
            touch = Touch(when, when - self.refresh, cutoff, write)
        else:
            seen = backend.seen(user_id)
            if seen is not None and self.is_expired(seen, when):
                backend.delete_idle_user(user_id, when - self.grace())
                seen = None
            if (seen is None or when - seen >= self.refresh) and (write or seen is not None):
                backend.mark_seen(user_id, when, create=write)
                seen = when
            if seen is not None:
                self._remember(user_id, seen)
        if purge_due:
            self.purge(backend, when - self.grace(), PURGE_BATCH)
        return touch

    def carried(self, user_id: Key, touch: Touch | None) -> None:
        """The engine's call that carried ``touch`` succeeded: a write's activity is now
        stored, so the user's next calls need not record it (a refused write caches nothing)."""
        if touch is not None and touch.create:
            self._remember(user_id, touch.now)

    def _remember(self, user_id: Key, seen: float) -> None:
        with self._lock:
            if len(self._seen) >= SEEN_CACHE_SIZE:
                self._seen.clear()
            self._seen[user_id] = seen

    def live_users(self, backend: Backend) -> list[Key]:
        """Every user holding a value and not expired, in no particular order."""
        users = backend.users()
        if self.expire_after is None:
            return users
        seen, when = backend.sessions(), sessions.now()
        return [user for user in users if not self.is_expired(seen.get(user, when), when)]

    def forget(self, *user_ids: Key) -> None:
        """Drop the cached activity of users that were deleted or renamed."""
        with self._lock:
            for user_id in user_ids:
                self._seen.pop(user_id, None)

    def purge(
        self, backend: Backend, cutoff: float, limit: int | None, progress: Progress | None = None
    ) -> int:
        """Delete up to ``limit`` users (``None``: all) last active before ``cutoff``."""
        removed = 0
        while limit is None or removed < limit:
            batch = backend.idle_users(cutoff, PURGE_BATCH if limit is None else limit - removed)
            if not batch:
                break
            for user_id in batch:
                removed += backend.delete_idle_user(user_id, cutoff)
                self.forget(user_id)
                if progress is not None:
                    progress(removed)
        if removed:
            logger.info("%s: purged %d idle users", backend.location, removed)
        return removed

    def purge_all(self, backend: Backend, idle: float | None, progress: Progress | None) -> int:
        """Delete every user idle for ``idle`` seconds (``None``: past expiry); return how many.

        Users stored before their activity was recorded get it recorded now.
        """
        when = sessions.now()
        recorded = backend.sessions()
        for user_id in backend.users():
            if user_id not in recorded:
                backend.mark_seen(user_id, when, create=True)
        cutoff = when - (self.grace() if idle is None else idle)
        return self.purge(backend, cutoff, None, progress)
