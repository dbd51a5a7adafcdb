"""Reading the Redis engine's counters: each user's stored bytes, and its values.

The write scripts keep them (see :mod:`.scripts`): each bucket's users hash
maps a user to its stored bytes, and a user's value count is its hash's length.
Reading every user's reads every bucket, so its cost follows the users, not
their values.
"""

from __future__ import annotations

from ...keys import Key, decode_key
from ..base import Count
from .async_server import AsyncServer
from .layout import TOTAL, Layout


class AsyncCounters:
    """The counters of one store.

    :param server: the server.
    :param layout: the store's key names.
    """

    def __init__(self, server: AsyncServer, layout: Layout) -> None:
        self._server, self._layout = server, layout

    async def members(self) -> list[bytes]:
        """The JSON id of every user holding at least one value, in one round trip."""
        pipe = (await self._server.client()).pipeline(transaction=False)
        for users in self._layout.users:
            pipe.hkeys(users)
        buckets = await self._server.call(pipe.execute)
        return [member for members in buckets for member in members if member != b""]

    async def counts(self, member: str | None) -> dict[Key, Count]:
        """``(values, stored bytes)`` of the user with this member (``None``: of every user);
        those without values are left out."""
        layout, client = self._layout, await self._server.client()
        if member is None:
            pipe = client.pipeline(transaction=False)
            for users in layout.users:
                pipe.hgetall(users)
            buckets = await self._server.call(pipe.execute)
            sizes = {m: s for bucket in buckets for m, s in bucket.items()}
            sizes.pop(TOTAL.encode(), None)
        else:
            users = layout.users[layout.bucket(member)]
            sizes = {member.encode(): await self._server.call(client.hget, users, member)}
        if not sizes:
            return {}
        pipe = client.pipeline(transaction=False)
        for name in sizes:
            pipe.hlen(layout.values(name.decode()))
        lengths = await self._server.call(pipe.execute)
        return {
            decode_key(name): (int(keys), int(size or 0))
            for (name, size), keys in zip(sizes.items(), lengths, strict=True)
            if keys
        }
