# Written by tools/unasync.py from async_purging.py: edit that file, then run the script.
"""Idle users: who is live, and deleting those idle past expiry, through the engine's
maintenance calls (``Activity`` decides when; it never calls an engine itself)."""

from __future__ import annotations

import logging

from . import clock
from .activity import PURGE_BATCH, Activity, Progress
from .backends.base import Maintenance
from .keys import Key

logger = logging.getLogger("dash_database")


def purge(
    backend: Maintenance,
    activity: Activity,
    cutoff: float,
    limit: int | None,
    progress: Progress | None = None,
) -> int:
    """Delete up to ``limit`` users (``None``: all) last active before ``cutoff``; return
    how many. Each delete checks the user is still idle, in the engine's transaction."""
    removed = 0
    while limit is None or removed < limit:
        batch = backend.idle_users(cutoff, PURGE_BATCH if limit is None else limit - removed)
        if not batch:
            break
        for user_id in batch:
            removed += backend.delete_idle_user(user_id, cutoff)
            activity.forget(user_id)
            if progress is not None:
                progress(removed)
    if removed:
        logger.info("%s: purged %d idle users", getattr(backend, "location", "?"), removed)
    return removed


def purge_all(
    backend: Maintenance, activity: Activity, idle: float | None, progress: Progress | None
) -> int:
    """Delete every user idle for ``idle`` seconds (``None``: past expiry); return how many.

    Users stored before their activity was recorded get it recorded now.
    """
    when = clock.now()
    record_activity(backend, when, dry_run=False)
    cutoff = when - (activity.grace() if idle is None else idle)
    return purge(backend, activity, cutoff, None, progress)


def live_users(backend: Maintenance, activity: Activity) -> list[Key]:
    """Every user holding a value and not expired, in no particular order."""
    users = backend.users()
    if activity.expire_after is None:
        return users
    seen, when = backend.sessions(), clock.now()
    return [user for user in users if not activity.is_expired(seen.get(user, when), when)]


def record_activity(backend: Maintenance, when: float, dry_run: bool) -> int:
    """Record ``when`` as the last activity of every user holding values with none recorded
    (stored before activity was kept, or whose activity index was lost); return how many.
    With ``dry_run``, only count them."""
    recorded = backend.sessions()
    missing = [user_id for user_id in backend.users() if user_id not in recorded]
    if not dry_run:
        for user_id in missing:
            backend.mark_seen(user_id, when, create=True)
    return len(missing)
