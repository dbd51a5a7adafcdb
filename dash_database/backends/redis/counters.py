"""The Redis engine's counters: each user's stored bytes, and the store's values and bytes.

The write scripts keep them (see :mod:`.scripts`); a user's value count is
its hash's length. A store written before they existed has them built once,
by the first process that opens it, user by user in one script each, so that
writers running meanwhile stay exact.
"""

from __future__ import annotations

import logging

from redis.commands.core import Script

from ...keys import Key, decode_key
from ..base import Count
from . import scripts
from .server import Server

logger = logging.getLogger("dash_database")

#: A store with more users than this logs its progress while its counters are built.
PROGRESS_EVERY = 10_000


class Counters:
    """The counters of one prefix on one server.

    :param server: the server.
    :param prefix: the app's key prefix.
    """

    def __init__(self, server: Server, prefix: str) -> None:
        self._server, self._prefix = server, prefix
        #: The bytes hash (user member -> stored bytes) and the totals hash.
        self.keys = [f"{prefix}bytes", f"{prefix}totals"]
        self._users = f"{prefix}users"
        client = server.client
        self._recount_user: Script = client.register_script(scripts.RECOUNT_USER)
        self._recount_totals: Script = client.register_script(scripts.RECOUNT_TOTALS)
        self._built = False

    def build(self) -> None:
        """Build the counters if this store has none yet (once per store, checked once
        per process)."""
        if self._built:
            return
        client = self._server.client
        if not self._server.call(client.hexists, self.keys[1], "counted"):
            members = list(self._server.call(client.smembers, self._users))
            if len(members) > PROGRESS_EVERY:
                logger.info("%s: building counters for %d users, once", self._prefix, len(members))
            for done, member in enumerate(members, 1):
                keys = [f"{self._prefix}user:{member.decode()}"]
                self._server.run(self._recount_user, keys, [self._prefix, member])
                if done % PROGRESS_EVERY == 0:
                    logger.info("%s: counted %d of %d users", self._prefix, done, len(members))
            keys = ["", self._users, "", *self.keys]
            self._server.run(self._recount_totals, keys, [self._prefix])
        self._built = True

    def counts(self, member: str | None) -> dict[Key, Count]:
        """``(values, stored bytes)`` of the user with this member (``None``: of every user);
        those without values are left out."""
        self.build()
        if member is None:
            members = list(self._server.call(self._server.client.smembers, self._users))
        else:
            members = [member.encode()]
        return self._read(members)

    def _read(self, members: list[bytes]) -> dict[Key, Count]:
        """``(values, stored bytes)`` of the users with these members, in one round trip."""
        if not members:
            return {}
        pipe = self._server.client.pipeline(transaction=False)
        for member in members:
            pipe.hlen(f"{self._prefix}user:{member.decode()}")
        pipe.hmget(self.keys[0], members)
        *lengths, sizes = self._server.call(pipe.execute)
        return {
            decode_key(member): (int(keys), int(size or 0))
            for member, keys, size in zip(members, lengths, sizes, strict=True)
            if keys
        }
