"""The Redis engine: values in a server shared by every process on every host.

Layout, under a prefix (default ``dash_database:``) so apps can share a server:

* ``{prefix}user:{json user id}``: one hash per user, field = JSON key name,
  value = the record (see :mod:`dash_database.serialization`). Listing,
  counting and deleting a user touch only that hash.
* ``{prefix}users``: the set of user ids holding at least one value.
* ``{prefix}seen``: each user's last activity as a score, so that idle users
  come from the index.
* ``{prefix}bytes`` and ``{prefix}totals``: the counters, each user's stored
  bytes and the store's values and bytes, kept by the scripts that write
  (:mod:`.counters`); a user's value count is its hash's length.
* ``{prefix}chunk:{version}:{n}``: the chunks of values larger than one chunk
  (Redis refuses strings over 512 MB). Their record, ``p`` or ``j`` then
  ``{version}:{count}``, is written only after every chunk, by the same
  script that makes the chunks permanent and deletes the old value's chunks,
  so no reader ever sees half a value. A replaced value's chunks expire a
  minute later rather than at once, so that a reader streaming them finishes.

Every write is one Lua script (:mod:`.scripts`), hence atomic; ``update`` is
WATCH/MULTI, bounded by the timeout.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from redis.commands.core import Script

from ...activity import Touch
from ...exceptions import StorageError
from ...keys import MISSING, Key, Where, decode_key, encode_key
from ...quotas import Quotas
from ...records import is_chunked, split
from ...serialization import CHUNK_SIZE, Codec, RawValue, copy_pieces
from ..base import Backend, Count, Seen, ValueSize
from . import counters, renaming, scripts
from .chunks import Chunks, ChunkVanished, Written
from .server import Server, redact

__all__ = ["DEFAULT_PREFIX", "RedisBackend", "redact"]

logger = logging.getLogger("dash_database")

DEFAULT_PREFIX = "dash_database:"

#: A replaced value's chunks stay this long, so that a reader already
#: streaming them finishes with the old value instead of starting over.
REPLACED_CHUNK_SECONDS = 60
#: update_user_value's retries wait a random time up to this (seconds).
MAX_BACKOFF_SECONDS = 0.005
_READ_ATTEMPTS = 5


def _touch_arg(touch: Touch | None) -> str:
    """A script's touch argument (see :mod:`.scripts`); empty for none."""
    if touch is None:
        return ""
    refresh = "" if math.isinf(touch.refresh_before) else repr(touch.refresh_before)
    drop = "" if touch.drop_before is None else repr(touch.drop_before)
    return f"{touch.now!r}:{refresh}:{drop}:{'1' if touch.create else '0'}"


def _seen(score: Any) -> float | None:
    """A script's answer for the user's activity (``False`` or ``None``: none)."""
    return None if score is None or score is False else float(score)


class RedisBackend(Backend):
    """Values in a Redis server.

    :param target: a ``redis://``, ``rediss://`` or ``unix://`` URL, or a
        ready ``redis.Redis`` client (which :meth:`close` leaves open).
    :param codec: the serializer (see :class:`~..base.Engine` for it, ``quotas`` and
        ``chunk_size``).
    :param timeout: seconds to wait for the server to connect or answer, and
        for a contended update to get through.
    :param prefix: the start of every key written.
    :param connect: reach the server now; ``False`` leaves it to the first call.
    :raises ConnectionFailedError: the server cannot be reached.
    """

    def __init__(
        self,
        target: object,
        codec: Codec,
        quotas: Quotas | None = None,
        chunk_size: int = CHUNK_SIZE,
        *,
        timeout: float,
        prefix: str,
        connect: bool = True,
    ) -> None:
        super().__init__(codec, quotas, chunk_size)
        self._server = Server(target, timeout)
        self._client = self._server.client
        self.location = self._server.location
        self._chunks = Chunks(self._server, prefix)
        self._timeout, self._prefix = timeout, prefix
        self._users, self._seen = f"{prefix}users", f"{prefix}seen"
        self._counters = counters.Counters(self._server, prefix)
        self._set: Script = self._client.register_script(scripts.SET)
        self._get: Script = self._client.register_script(scripts.GET)
        self._touch: Script = self._client.register_script(scripts.TOUCH)
        self._delete: Script = self._client.register_script(scripts.DELETE)
        self._delete_user: Script = self._client.register_script(scripts.DELETE_USER)
        self._rename = renaming.Renamer(self._client)
        self._delete_idle: Script = self._client.register_script(scripts.DELETE_IDLE)
        if connect:
            self._counters.build()
        logger.debug("opened %s (prefix %r)", self.location, prefix)

    def _hash(self, user_id: Key) -> str:
        return f"{self._prefix}user:{encode_key(user_id)}"

    def _script_keys(self, user_id: Key) -> list[str]:
        """KEYS of the scripts: the user's hash (they name the others from the prefix)."""
        return [self._hash(user_id)]

    def _run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a write script, once the counters it keeps are built."""
        self._counters.build()
        return self._server.run(script, keys, args)

    def _load(self, record: bytes, user_id: Key, key_name: Key, codec: Codec | None = None) -> Any:
        codec = codec or self.codec
        if not is_chunked(record):
            return codec.load_record(record, (user_id, key_name))
        head, reference = split(record)
        keys = self._chunks.keys_of(reference, user_id, key_name)
        return codec.load(head, self._chunks.read(keys), (user_id, key_name))

    def get(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[Any]:
        """The stored value, or :data:`~dash_database.keys.MISSING`."""
        field, args, seen = encode_key(key_name), None, None
        if touch is not None:
            args = [self._prefix, field, encode_key(user_id), _touch_arg(touch)]
        for _ in range(_READ_ATTEMPTS):
            if args is None:
                record = self._server.call(self._client.hget, self._hash(user_id), field)
            else:  # the read and its activity in one round trip, once
                record, score = self._run(self._get, self._script_keys(user_id), args)
                record, seen, args = record or None, _seen(score), None
            if record is None:
                return MISSING, seen
            try:
                return self._load(record, user_id, key_name), seen
            except ChunkVanished:
                continue  # replaced while we read it: read the new value
        raise StorageError(f"{self.location}: the value kept changing while it was read; retry")

    def _touched(self, user_id: Key, touch: Touch | None) -> float | None:
        """Apply ``touch`` alone, before a call that needs no script; the stored activity."""
        if touch is None:
            return None
        args = [self._prefix, encode_key(user_id), _touch_arg(touch)]
        return _seen(self._run(self._touch, self._script_keys(user_id), args))

    def contains(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Whether a value is stored, without reading it."""
        seen, field = self._touched(user_id, touch), encode_key(key_name)
        return bool(self._server.call(self._client.hexists, self._hash(user_id), field)), seen

    def keys(self, user_id: Key, touch: Touch | None) -> Seen[list[Key]]:
        """The user's key names, from the user's own hash."""
        seen = self._touched(user_id, touch)
        fields = self._server.call(self._client.hkeys, self._hash(user_id))
        return [decode_key(field) for field in fields], seen

    def _store(
        self, user_id: Key, key_name: Key, written: Written, expect: Any = (), touch: Any = None
    ) -> bool:
        """Commit a written record with the set script (a compare-and-set with ``expect``),
        checked against the quotas; its pending chunks go if it did not commit. Return
        whether it did.

        :raises QuotaExceededError: it would have passed a limit.
        """
        limits = self.quotas.limits() if self.quotas else (0, 0, 0)
        sizes = ":".join(str(n or 0) for n in (REPLACED_CHUNK_SECONDS, written.size, *limits))
        member, field = encode_key(user_id), encode_key(key_name)
        args = [self._prefix, field, written.record, member, _touch_arg(touch), sizes, *expect]
        try:
            status = self._run(self._set, self._script_keys(user_id), args)
        except BaseException:
            self._chunks.discard(written.chunks)
            raise
        if status != 1:
            self._chunks.discard(written.chunks)
        if isinstance(status, bytes) and self.quotas is not None:  # "limit:figure"
            which, figure = map(int, status.split(b":"))
            raise self.quotas.error(which, user_id, key_name, written.size, figure)
        return bool(status == 1)

    def set(self, user_id: Key, key_name: Key, value: Any, touch: Touch | None) -> float | None:
        """Store ``value``; committed when this returns."""
        written = self._chunks.write(self.codec, value, (user_id, key_name), self.chunk_size)
        self._store(user_id, key_name, written, touch=touch)
        # A write stores at least its time (see Touch.outcome): no read back needed.
        return None if touch is None else touch.now

    def read_raw(self, user_id: Key, key_name: Key) -> RawValue | None:
        """The value as stored, never decoded; ``None`` if there is none."""
        record = self._server.call(self._client.hget, self._hash(user_id), encode_key(key_name))
        if record is None:
            return None
        head, body = split(record)
        if not is_chunked(record):
            return head, iter([body])
        return head, self._chunks.read(self._chunks.keys_of(body, user_id, key_name))

    def write_raw(self, user_id: Key, key_name: Key, head: bytes, pieces: Iterable[bytes]) -> None:
        """Store a record read elsewhere, as :meth:`set` stores a value."""
        written = self._chunks.write_from(copy_pieces(head, pieces), self.chunk_size)
        self._store(user_id, key_name, written)

    def _compare_and_set(
        self,
        where: Where,
        codec: Codec,
        func: Callable[[Any], Any],
        default: Any,
        touch: Touch | None,
    ) -> tuple[bool, Any]:
        """Store ``func(old value or default)``, both through ``codec``: optimistic, a
        compare-and-set of the key's record (so writes to the user's other keys do not get
        in the way), with ``func`` run again on a changed value until the timeout. Whether
        there was an old value, and the new one; with ``default`` :data:`MISSING`, only a
        stored value is replaced.

        :raises StorageError: the value kept changing for longer than the timeout.
        """
        user_id, key_name = where
        field = encode_key(key_name)
        deadline = time.monotonic() + self._timeout
        tries = 0
        while True:
            tries += 1
            record = self._server.call(self._client.hget, self._hash(user_id), field)
            if record is None and default is MISSING:
                return False, MISSING
            try:
                old = default if record is None else self._load(record, user_id, key_name, codec)
            except ChunkVanished:
                pass  # replaced while we read it: try again
            else:
                new = func(old)
                written = self._chunks.write(codec, new, where, self.chunk_size)
                # Stored only if the key's record is still the one read (None: absent).
                expect = ["absent", b""] if record is None else ["equal", record]
                if self._store(user_id, key_name, written, expect, touch):
                    return record is not None, new
            if time.monotonic() >= deadline:
                raise StorageError(
                    f"{self.location}: key_name={key_name!r} of user_id={user_id!r} was "
                    f"contended: other clients changed it during each of {tries} tries in "
                    f"timeout={self._timeout}s. Nothing was stored; retry, or raise timeout"
                )
            # Spread the retries of updaters that lost the same race.
            time.sleep(random.uniform(0, MAX_BACKOFF_SECONDS))

    def update(
        self,
        user_id: Key,
        key_name: Key,
        func: Callable[[Any], Any],
        default: Any,
        touch: Touch | None,
    ) -> Seen[Any]:
        """Atomically store and return ``func(old value or default)`` (a compare-and-set)."""
        _, new = self._compare_and_set((user_id, key_name), self.codec, func, default, touch)
        return new, None if touch is None else touch.now

    def recode(self, user_id: Key, key_name: Key, codec: Codec, func: Callable[[Any], Any]) -> bool:
        """Atomically replace a stored value with ``func(old)``, through ``codec``."""
        return self._compare_and_set((user_id, key_name), codec, func, MISSING, None)[0]

    def delete(self, user_id: Key, key_name: Key, touch: Touch | None) -> Seen[bool]:
        """Delete one value; whether it existed."""
        seen = self._touched(user_id, touch)
        args = [self._prefix, encode_key(key_name), encode_key(user_id)]
        return bool(self._run(self._delete, self._script_keys(user_id), args)), seen

    def delete_user(self, user_id: Key) -> int:
        """Delete all the user's values in one script, hence atomically."""
        args = [self._prefix, encode_key(user_id)]
        return int(self._run(self._delete_user, self._script_keys(user_id), args))

    def rename_user(self, old_id: Key, new_id: Key) -> int:
        """Rename the user's hash and move its activity, in one script (see :mod:`.renaming`)."""
        keys = [self._hash(old_id), self._hash(new_id), self._users, self._seen]
        keys.append(self._counters.keys[0])
        members = [self._prefix, encode_key(old_id), encode_key(new_id)]
        return self._rename(self._run, keys, members, self.codec, (old_id, new_id))

    def users(self) -> list[Key]:
        """Every user id holding at least one value."""
        return [
            json.loads(member) for member in self._server.call(self._client.smembers, self._users)
        ]

    def seen(self, user_id: Key) -> float | None:
        """The user's last recorded activity, or ``None``."""
        score = self._server.call(self._client.zscore, self._seen, encode_key(user_id))
        return None if score is None else float(score)

    def mark_seen(self, user_id: Key, when: float, create: bool) -> None:
        """Record activity at ``when`` (never moving it back); ``create`` adds a missing user."""
        only = [] if create else ["XX"]
        self._server.write("ZADD", self._seen, *only, "GT", when, encode_key(user_id))

    def sessions(self) -> dict[Key, float]:
        """Every user's last recorded activity."""
        pairs = self._server.call(self._client.zrange, self._seen, 0, -1, withscores=True)
        return {json.loads(member): float(score) for member, score in pairs}

    def idle_users(self, cutoff: float, limit: int) -> list[Key]:
        """Up to ``limit`` users last active before ``cutoff``, oldest first."""
        members = self._server.call(
            self._client.zrangebyscore, self._seen, "-inf", f"({cutoff!r}", start=0, num=limit
        )
        return [json.loads(member) for member in members]

    def delete_idle_user(self, user_id: Key, cutoff: float) -> bool:
        """Delete the user if it was last active before ``cutoff``, in one script."""
        args = [self._prefix, encode_key(user_id), repr(cutoff)]
        return bool(self._run(self._delete_idle, self._script_keys(user_id), args))

    def value_sizes(self, user_id: Key | None) -> list[ValueSize]:
        """``(user, key, stored bytes)`` for one user's values, or everybody's."""
        users = self.users() if user_id is None else [user_id]
        records = {u: self._server.call(self._client.hgetall, self._hash(u)) for u in users}
        pairs = [(u, decode_key(f), r) for u, rs in records.items() for f, r in rs.items()]
        return [(u, k, self._chunks.stored_size(r, u, k)) for u, k, r in pairs]

    def counts(self, user_id: Key | None) -> dict[Key, Count]:
        """``(values, stored bytes)`` of one user, or of every user, in one round trip."""
        return self._counters.counts(None if user_id is None else encode_key(user_id))

    def head(self, user_id: Key, key_name: Key, limit: int) -> bytes | None:
        """The first ``limit`` bytes of the stored record, tag first, or ``None``."""
        record = self._server.call(self._client.hget, self._hash(user_id), encode_key(key_name))
        return None if record is None else self._chunks.head(record, user_id, key_name, limit)

    def close(self) -> None:
        """Close the connections this engine opened; never deletes data."""
        self._server.close()
