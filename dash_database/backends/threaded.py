"""The SQLite engines under the async face: each call on a thread, one hop per call.

SQLite's API blocks, as every async SQLite library's does underneath (aiosqlite
runs it on a thread too). So the async face reaches a sync engine through
:class:`ThreadedBackend`, which runs each engine call, whole, on one of the
package's threads (:func:`~dash_database.async_concurrency.run`): one hop, not
one per statement. A stream of pieces crosses the same way, one hop per piece.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from typing import Any

from .. import async_concurrency
from ..activity import Touch
from ..keys import Key
from ..serialization import Codec
from .async_base import AsyncBackend, AsyncRawValue, Count, Seen, ValueSize
from .base import Backend

run = async_concurrency.run


class ThreadedBackend(AsyncBackend):
    """An async engine over a sync one.

    :param engine: the sync engine; its ``codec``, ``quotas`` and ``chunk_size`` are this
        engine's.
    """

    def __init__(self, engine: Backend) -> None:
        super().__init__(engine.codec, engine.quotas, engine.chunk_size)
        #: The sync engine, for the sync face over the same store (``AsyncDashDatabase.sync``).
        self.engine = engine
        self.location = engine.location

    async def get(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[Any]:
        return await run(self.engine.get, user_id, key_name, touch)

    async def set(
        self, user_id: Key, key_name: Key, value: Any, touch: Touch | None
    ) -> float | None:
        return await run(self.engine.set, user_id, key_name, value, touch)

    async def update(
        self,
        user_id: Key,
        key_name: Key,
        func: Callable[[Any], Any],
        default: Any,
        touch: Touch | None,
    ) -> Seen[Any]:
        return await run(self.engine.update, user_id, key_name, func, default, touch)

    async def delete(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        return await run(self.engine.delete, user_id, key_name, touch)

    async def contains(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        return await run(self.engine.contains, user_id, key_name, touch)

    async def keys(self, user_id: Key, touch: Touch | None) -> Seen[list[Key]]:
        return await run(self.engine.keys, user_id, touch)

    async def delete_user(self, user_id: Key) -> int:
        return await run(self.engine.delete_user, user_id)

    async def rename_user(self, old_id: Key, new_id: Key) -> int:
        return await run(self.engine.rename_user, old_id, new_id)

    async def aclose(self) -> None:
        await run(self.engine.close)

    async def counts(self, user_id: Key | None) -> dict[Key, Count]:
        return await run(self.engine.counts, user_id)

    async def users(self) -> list[Key]:
        return await run(self.engine.users)

    async def sessions(self) -> dict[Key, float]:
        return await run(self.engine.sessions)

    async def seen(self, user_id: Key) -> float | None:
        return await run(self.engine.seen, user_id)

    async def mark_seen(self, user_id: Key, when: float, create: bool) -> None:
        await run(self.engine.mark_seen, user_id, when, create)

    async def idle_users(self, cutoff: float, limit: int) -> list[Key]:
        return await run(self.engine.idle_users, cutoff, limit)

    async def delete_idle_user(self, user_id: Key, cutoff: float) -> bool:
        return await run(self.engine.delete_idle_user, user_id, cutoff)

    async def value_sizes(self, user_id: Key | None) -> list[ValueSize]:
        return await run(self.engine.value_sizes, user_id)

    async def read_raw(self, user_id: Key, key_name: Key) -> AsyncRawValue | None:
        raw = await run(self.engine.read_raw, user_id, key_name)
        return None if raw is None else (raw[0], _pieces(raw[1]))

    async def write_raw(
        self, user_id: Key, key_name: Key, head: bytes, pieces: AsyncIterable[bytes]
    ) -> None:
        def write(body: Iterator[bytes]) -> None:
            self.engine.write_raw(user_id, key_name, head, body)

        await async_concurrency.consume(write, aiter(pieces))

    async def head(self, user_id: Key, key_name: Key, limit: int) -> bytes | None:
        return await run(self.engine.head, user_id, key_name, limit)

    async def recode(
        self, user_id: Key, key_name: Key, codec: Codec, func: Callable[[Any], Any]
    ) -> bool:
        return await run(self.engine.recode, user_id, key_name, codec, func)

    async def recount(self) -> None:
        await run(self.engine.recount)

    async def check_storage(self) -> list[str]:
        return await run(self.engine.check_storage)

    async def collect_garbage(self) -> int:
        return await run(self.engine.collect_garbage)


async def _pieces(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A sync stream of pieces, each read on a thread."""
    while True:
        piece: bytes | None = await run(next, pieces, None)
        if piece is None:
            return
        yield piece
