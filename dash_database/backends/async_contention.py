"""How a server engine's compare-and-set (``update_user_value``) tries again after losing a
race: a short random wait, so that updaters that lost the same race spread out, until the
store's ``timeout`` has passed.
"""

from __future__ import annotations

import random
import time

from .. import async_concurrency
from ..exceptions import StorageError
from ..keys import Where

#: A retry waits a random time up to this (seconds).
MAX_BACKOFF_SECONDS = 0.005


async def back_off(location: str, where: Where, tries: int, started: float, timeout: float) -> None:
    """Wait before the next try of a compare-and-set that lost ``tries`` races since
    ``started`` (a ``time.monotonic()``).

    :raises StorageError: ``timeout`` seconds have passed; nothing was stored.
    """
    if time.monotonic() >= started + timeout:
        user_id, key_name = where
        raise StorageError(
            f"{location}: key_name={key_name!r} of user_id={user_id!r} was contended: other "
            f"clients changed it during each of {tries} tries in timeout={timeout}s. Nothing "
            "was stored; retry, or raise timeout"
        )
    await async_concurrency.sleep(random.uniform(0, MAX_BACKOFF_SECONDS))
