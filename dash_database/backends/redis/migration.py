# Written by tools/unasync.py from async_migration.py: edit that file, then run the script.
"""Opening a Redis store: its layout, and the upgrade of a store that dash_database 2.x wrote.

dash_database 2.x kept one flat set of keys per prefix ``P``: ``Puser:{id}``
per user, and ``Pusers``, ``Pseen``, ``Pbytes``, ``Ptotals`` and
``Pchunk:{version}:{n}`` for everybody. The first process that opens such a
store moves it to the bucketed layout of :mod:`.layout`, user by user, each in
one script: the user's hash and chunks are renamed (never rewritten), its
stored bytes counted again from its values, its activity moved. Every process
that opens the store meanwhile helps rather than waits, and a process that dies
midway leaves the rest to the next one: a user already moved is skipped. The
store's ``layout`` key is written last, once nothing is left to move.

Processes of 2.x still running after the upgrade would keep writing the flat
layout, which the new one no longer reads: upgrade every process of an app at
once.
"""

from __future__ import annotations

import logging

from ...exceptions import StorageError
from . import scripts
from .chunks import Chunks
from .layout import BUCKETS, MAX_BUCKETS, VERSION, Layout
from .scripts import NEED_CHUNKS
from .server import Server
from .wire import Script

logger = logging.getLogger("dash_database")

#: A store with more users than this logs its progress while it is upgraded.
PROGRESS_EVERY = 10_000
#: How many times one user's move is tried while 2.x writers keep changing it.
_ATTEMPTS = 5
_UPGRADE_USER = Script.of(scripts.UPGRADE_USER)


def open_layout(server: Server, prefix: str) -> Layout:
    """The layout of the store under ``prefix``, written first if the store is new, and the
    store upgraded first if 2.x wrote it.

    :raises StorageError: a newer dash_database wrote the store.
    """
    marker, client = f"{prefix}layout", server.client()
    found = server.call(client.get, marker)
    if found is None:
        flat = [f"{prefix}{name}" for name in ("users", "seen", "bytes", "totals")]
        if server.call(client.exists, *flat):
            _Upgrade(server, prefix).run()
        server.write("SET", marker, f"{VERSION}:{BUCKETS}", "NX")
        found = server.call(client.get, marker)
    # Read back from the server, hence untrusted: the bucket count bounds the tag search.
    version, _, buckets = (found or b"").decode(errors="replace").partition(":")
    if version != str(VERSION) or not (buckets.isascii() and buckets.isdigit()):
        raise StorageError(
            f"{server.location}: the store under prefix={prefix!r} has the layout {found!r}, "
            f"which this dash_database (layout {VERSION}) cannot read; upgrade dash_database"
        )
    if not 0 < int(buckets) <= MAX_BUCKETS:
        raise StorageError(f"{server.location}: the layout key {marker!r} is damaged: {found!r}")
    _warn_if_evicting(server)
    return Layout(prefix, int(buckets))


def _warn_if_evicting(server: Server) -> None:
    """Log a warning if the server may evict keys when full (any ``maxmemory-policy`` but
    ``noeviction``): it would drop values, their chunks and the store's indexes."""
    try:  # managed servers may refuse CONFIG: then nothing is known, and nothing said
        reply = server.read("CONFIG", "GET", "maxmemory-policy")
    except StorageError:
        return
    # A map under RESP3 (redis-py 8 may speak it), a flat list under RESP2.
    pairs = (
        dict(reply) if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2], strict=True))
    )
    policy = bytes(pairs.get(b"maxmemory-policy", b"noeviction")).decode(errors="replace")
    if policy != "noeviction":
        logger.warning(
            "%s: maxmemory-policy is %s: when full, Redis evicts keys, and this store "
            "loses values and its indexes (reads of a lost chunk fail; stats and quotas go "
            "wrong until repair). Set maxmemory-policy noeviction: a full server then "
            "refuses writes, and loses nothing",
            server.location,
            policy,
        )


class _Upgrade:
    """Moving one store from the flat layout of 2.x to the bucketed one."""

    def __init__(self, server: Server, prefix: str) -> None:
        self._server, self._prefix = server, prefix
        self._layout = Layout(prefix)
        self._chunks = Chunks(server, self._layout)
        self._users, self._seen = f"{prefix}users", f"{prefix}seen"

    def run(self) -> None:
        """Move every user, until the flat layout holds none (another process may be moving
        them too), then drop its counters."""
        client = self._server.client()
        while True:
            members = set(self._server.call(client.smembers, self._users))
            members.update(self._server.call(client.zrange, self._seen, 0, -1))
            if not members:
                break
            logger.info("%s: upgrading %d users to layout %d", self._prefix, len(members), VERSION)
            for done, member in enumerate(sorted(members), 1):
                self._move(member.decode())
                if done % PROGRESS_EVERY == 0:
                    logger.info("%s: upgraded %d of %d users", self._prefix, done, len(members))
        self._server.write("DEL", f"{self._prefix}bytes", f"{self._prefix}totals")

    def _move(self, member: str) -> None:
        """Move one user, in one script."""
        old_values = f"{self._prefix}user:{member}"
        keys = [old_values, self._users, self._seen, *self._layout.user_keys(member)]
        chunk_pairs: list[str] = []
        for _ in range(_ATTEMPTS):
            count = len(chunk_pairs) // 2
            args = [member, member, count]
            moved = self._server.run(
                _UPGRADE_USER, [*keys, *chunk_pairs, f"{self._prefix}bytes"], args
            )
            if moved == -1:
                raise StorageError(
                    f"{self._server.location}: user {member} has values in both the layout of "
                    "dash_database 2.x and the new one: a 2.x process wrote while the store was "
                    "being upgraded. Stop every 2.x process and open the store again"
                )
            if moved != NEED_CHUNKS:
                return
            old = self._chunks.declared(old_values, self._flat_chunk)
            new = [self._layout.base(member) + key[len(self._prefix) :] for key in old]
            chunk_pairs = [*old, *new]
        raise StorageError(
            f"{self._server.location}: user {member} kept changing while the store was being "
            "upgraded: stop every dash_database 2.x process, then open the store again"
        )

    def _flat_chunk(self, version: str, index: int) -> str:
        return f"{self._prefix}chunk:{version}:{index}"
