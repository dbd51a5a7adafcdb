"""Activity and expiry, decided here and applied by the engines: when each user was last seen.

Every call for a user records its activity, at most once per refresh interval
per user and process, so that reads stay reads. With ``expire_after``, a user
idle for longer is dropped: invisible at once, and deleted first by the next
call that touches it, a few at a time in the background of other calls, or all
at once by ``purge_expired``.

This module decides and never acts: :meth:`Activity.decide` says what a call
must do (a :class:`Touch`, or nothing), the engine applies it in the same call
as the operation, atomically, and reports the stored activity back to
:meth:`Activity.learn`. The rule an engine applies is :meth:`Touch.outcome`,
written once here; the Lua form (``backends/redis/scripts.py``) and the SQL
form (``backends/sqlite/schema.py``) are tested against it on one table of
cases (``tests/contract/test_contract_rules.py``).
"""

from __future__ import annotations

import math
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass

from . import clock
from .keys import Key

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


@dataclass(frozen=True)
class Touch:
    """What one call must do about its user's activity, applied by the engine in the same
    call as the operation (see :meth:`outcome`).

    :param now: the time of the call.
    :param refresh_before: record ``now`` if the stored activity is older than this
        (a write: ``inf``, always).
    :param drop_before: with expiry: a user last active before this is deleted first.
    :param create: record ``now`` for a user with no activity (a write); a read never
        creates a user.
    """

    now: float
    refresh_before: float
    drop_before: float | None
    create: bool

    @classmethod
    def if_missing(cls, now: float) -> Touch:
        """A write's touch that records ``now`` only for a user with no activity at all
        (an engine whose activity index can be lost apart from its values, Redis, sends it
        with a write that :meth:`Activity.decide` had nothing to do for)."""
        return cls(now, refresh_before=0.0, drop_before=None, create=True)

    def outcome(self, seen: float | None) -> tuple[bool, float | None]:
        """What applying this touch to a user whose stored activity is ``seen`` does:
        whether the user is dropped first, and the activity to store (``None``: none).

        The stored activity never moves back: a write records ``max(seen, now)``.
        """
        drop = self.drop_before is not None and seen is not None and seen < self.drop_before
        if drop:
            seen = None
        if seen is None:
            return drop, self.now if self.create else None
        return drop, max(seen, self.now) if seen < self.refresh_before else None


class Activity:
    """One database's activity decisions, and what its engine reported, shared by threads.

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
        # The last activity the engine reported per user: never later than the
        # stored one, so a fresh entry proves the user is not idle.
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

    def cutoff(self, when: float) -> float | None:
        """A user last active before this is dropped at ``when`` (``None``: no expiry)."""
        return None if self.expire_after is None else when - self.grace()

    @typing.overload
    def decide(self, user_id: Key, write: bool) -> Touch | None: ...
    @typing.overload
    def decide(self, user_id: Key, write: bool, force: typing.Literal[True]) -> Touch: ...
    def decide(self, user_id: Key, write: bool, force: bool = False) -> Touch | None:
        """What a call for ``user_id`` (a write, or not) must do about its activity now:
        ``None`` when this process learned it lately, so that there is nothing to do.

        :param force: record now whatever was learned (``touch()``), but never create.
        """
        when = clock.now()
        cached = self._seen.get(user_id)
        if not force and cached is not None and when - cached < self.refresh:
            return None  # recorded lately: not idle, nothing to record
        refresh_before = math.inf if write or force else when - self.refresh
        return Touch(when, refresh_before, self.cutoff(when), create=write)

    def learn(self, user_id: Key, seen: float | None) -> None:
        """Remember the activity the engine reported after a call (``None``: none stored)."""
        if seen is None:
            return
        with self._lock:
            if len(self._seen) >= SEEN_CACHE_SIZE:
                self._seen.clear()
            self._seen[user_id] = seen

    def forget(self, *user_ids: Key) -> None:
        """Drop what was learned of users that were deleted or renamed."""
        with self._lock:
            for user_id in user_ids:
                self._seen.pop(user_id, None)

    def purge_due(self) -> float | None:
        """The cutoff of a background purge, if one is due now in this process (at most one
        thread per refresh interval gets it); else ``None``."""
        if self.expire_after is None:
            return None
        when = clock.now()
        if when < self._next_purge:
            return None
        with self._lock:  # checked again: one thread per interval starts a purge
            if when < self._next_purge:
                return None
            self._next_purge = when + self.refresh
        return when - self.grace()
