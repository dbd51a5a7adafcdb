"""Waiting readers of one event loop, parked on futures that whoever sees a change sets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


async def until(future: asyncio.Future[None], timeout: float) -> None:
    """Wait for ``future`` to be set, or for ``timeout`` seconds; never cancel it."""
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.shield(future), timeout)


def wake(futures: Iterable[asyncio.Future[None]]) -> None:
    """Set each of ``futures`` that is not set yet: its reader reads again."""
    for future in futures:
        if not future.done():
            future.set_result(None)
