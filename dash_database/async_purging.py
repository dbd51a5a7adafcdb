"""Idle users: who is live, and deleting those idle past expiry, through the engine's
maintenance calls (``Activity`` decides when; it never calls an engine itself)."""

from __future__ import annotations

import logging

from . import clock
from .activity import PURGE_BATCH, Activity, Progress
from .backends.async_base import AsyncMaintenance
from .keys import Key

logger = logging.getLogger("dash_database")


async def purge(
    backend: AsyncMaintenance,
    activity: Activity,
    cutoff: float,
    limit: int | None,
    progress: Progress | None = None,
) -> int:
    """Delete up to ``limit`` users (``None``: all) last active before ``cutoff``; return
    how many. Each delete checks the user is still idle, in the engine's transaction."""
    removed = 0
    while limit is None or removed < limit:
        batch = await backend.idle_users(cutoff, PURGE_BATCH if limit is None else limit - removed)
        if not batch:
            break
        for user_id in batch:
            removed += await backend.delete_idle_user(user_id, cutoff)
            activity.forget(user_id)
            if progress is not None:
                progress(removed)
    if removed:
        logger.info("%s: purged %d idle users", getattr(backend, "location", "?"), removed)
    return removed


async def purge_all(
    backend: AsyncMaintenance, activity: Activity, idle: float | None, progress: Progress | None
) -> int:
    """Delete every user idle for ``idle`` seconds (``None``: past expiry); return how many.

    Users stored before their activity was recorded get it recorded now.
    """
    when = clock.now()
    await record_activity(backend, when, dry_run=False)
    cutoff = when - (activity.grace() if idle is None else idle)
    return await purge(backend, activity, cutoff, None, progress)


async def live_users(backend: AsyncMaintenance, activity: Activity) -> list[Key]:
    """Every user holding a value and not expired, in no particular order."""
    users = await backend.users()
    if activity.expire_after is None:
        return users
    seen, when = await backend.sessions(), clock.now()
    return [user for user in users if not activity.is_expired(seen.get(user, when), when)]


async def record_activity(backend: AsyncMaintenance, when: float, dry_run: bool) -> int:
    """Record ``when`` as the last activity of every user holding values with none recorded
    (stored before activity was kept, or whose activity index was lost); return how many.
    With ``dry_run``, only count them."""
    recorded = await backend.sessions()
    missing = [user_id for user_id in await backend.users() if user_id not in recorded]
    if not dry_run:
        for user_id in missing:
            await backend.mark_seen(user_id, when, create=True)
    return len(missing)
