"""The scale-out engine: a Redis server shared by every process on every host.

Layout, under a prefix (default ``dash_database:``) so apps can share a server:

* ``{prefix}user:{json user id}``: one hash per user, field = JSON key name,
  value = the record (see :mod:`dash_database.serialization`). Listing,
  counting and deleting a user touch only that hash.
* ``{prefix}users``: the set of user ids holding at least one value.
* ``{prefix}chunk:{version}:{n}``: the chunks of values larger than one chunk
  (Redis refuses strings over 512 MB). Their record, ``p`` or ``j`` then
  ``{version}:{count}``, is written only after every chunk, by the same
  script that makes the chunks permanent and deletes the old value's chunks,
  so no reader ever sees half a value. A replaced value's chunks expire a
  minute later rather than at once, so that a reader streaming them finishes.

Every write is one Lua script, hence atomic; ``update`` is WATCH/MULTI.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, cast
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.commands.core import Script

from ..exceptions import ConnectionFailedError, DashDatabaseError, StorageError
from ..keys import Key, decode_key, encode_key
from ..serialization import CHUNK_SIZE, ChunkWriter, Codec, is_chunked
from .base import MISSING, Backend

logger = logging.getLogger("dash_database")

DEFAULT_PREFIX = "dash_database:"

#: Chunks of a value being written expire unless its record is committed:
#: a writer that dies halfway leaves nothing behind for long.
PENDING_CHUNK_SECONDS = 3600
#: A replaced value's chunks stay this long, so that a reader already
#: streaming them finishes with the old value instead of starting over.
REPLACED_CHUNK_SECONDS = 60
_READ_ATTEMPTS = 5

# Lua helper shared by the scripts: the chunk keys a record points to.
# Tags are "P"/"J" for complete records and "p"/"j" (byte >= 97) for chunked.
_CHUNKS_LUA = """
local function chunks(record)
  local keys = {}
  if record and string.byte(record, 1) >= 97 then
    local version, count = string.match(string.sub(record, 2), '^([^:]+):(%d+)$')
    for i = 0, tonumber(count) - 1 do
      keys[#keys + 1] = ARGV[1] .. 'chunk:' .. version .. ':' .. i
    end
  end
  return keys
end
"""

# KEYS: user hash, users set. ARGV: prefix, field, record, user member, grace.
_SET_LUA = (
    _CHUNKS_LUA
    + """
local new = chunks(ARGV[3])
for _, key in ipairs(new) do
  if redis.call('EXISTS', key) == 0 then
    return redis.error_reply('DASHDB a chunk of the value expired before it was committed')
  end
end
local old = redis.call('HGET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
for _, key in ipairs(new) do redis.call('PERSIST', key) end
if old ~= ARGV[3] then
  for _, key in ipairs(chunks(old)) do redis.call('EXPIRE', key, ARGV[5]) end
end
return 1
"""
)

# KEYS: user hash, users set. ARGV: prefix, field, user member.
_DELETE_LUA = (
    _CHUNKS_LUA
    + """
local old = redis.call('HGET', KEYS[1], ARGV[2])
if not old then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
for _, key in ipairs(chunks(old)) do redis.call('DEL', key) end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
return 1
"""
)

# Deletes the user of KEYS[1..3] (hash, users set, seen zset), ARGV[2] its member.
_DROP_USER_LUA = """
local records = redis.call('HVALS', KEYS[1])
for _, record in ipairs(records) do
  for _, key in ipairs(chunks(record)) do redis.call('DEL', key) end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
"""

# KEYS: user hash, users set, seen zset. ARGV: prefix, user member.
_DELETE_USER_LUA = _CHUNKS_LUA + _DROP_USER_LUA + "return #records\n"

# KEYS: user hash, users set, seen zset. ARGV: prefix, user member, cutoff.
# The idle check and the delete run as one script, so a write racing from
# another process either comes first (and saves the user) or finds it gone.
_DELETE_IDLE_LUA = (
    _CHUNKS_LUA
    + """
local seen = redis.call('ZSCORE', KEYS[3], ARGV[2])
if not seen or tonumber(seen) >= tonumber(ARGV[3]) then return 0 end
"""
    + _DROP_USER_LUA
    + "return 1\n"
)


class _ChunkVanished(DashDatabaseError):
    """A concurrent write replaced the value while we read its chunks."""


def redact(url: str) -> str:
    """``url`` without its password, for messages and ``repr``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _describe(client: redis.Redis) -> str:
    kwargs = client.get_connection_kwargs()
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
    return f"redis://{host}:{port}/{kwargs.get('db', 0)}"


class RedisBackend(Backend):
    """Values in a Redis server.

    :param target: a ``redis://``, ``rediss://`` or ``unix://`` URL, or a
        ready ``redis.Redis`` client (which :meth:`close` leaves open).
    :param codec: the serializer.
    :param timeout: seconds to wait for the server to connect or answer.
    :param prefix: the start of every key written.
    :raises ConnectionFailedError: the server cannot be reached.
    """

    def __init__(
        self, target: str | redis.Redis, codec: Codec, *, timeout: float, prefix: str
    ) -> None:
        super().__init__(codec)
        if isinstance(target, str):
            self.location = redact(target)
            self._client = redis.Redis.from_url(
                target, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            self._owns_client = True
        elif isinstance(target, redis.Redis):
            self.location = _describe(target)
            self._client = target
            self._owns_client = False
        else:
            raise TypeError(
                "db_location must be None, ':memory:', a file path, a redis:// URL or a "
                f"redis.Redis client, not {type(target).__name__}"
            )
        if self._client.get_connection_kwargs().get("decode_responses"):
            raise ValueError("pass a redis.Redis client made with decode_responses=False")
        self.chunk_size = CHUNK_SIZE
        self._prefix = prefix
        self._users = f"{prefix}users"
        # Each user's last activity as a score: ranges by time come from the index.
        self._seen = f"{prefix}seen"
        self._set: Script = self._client.register_script(_SET_LUA)
        self._delete: Script = self._client.register_script(_DELETE_LUA)
        self._delete_user: Script = self._client.register_script(_DELETE_USER_LUA)
        self._delete_idle: Script = self._client.register_script(_DELETE_IDLE_LUA)
        self._call(self._client.ping)
        logger.debug("opened %s (prefix %r)", self.location, prefix)

    def _fail(self, exc: redis.RedisError) -> NoReturn:
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            raise ConnectionFailedError(
                f"{self.location}: cannot reach the Redis server ({exc}); check that it runs "
                "and the URL and password are right. This call changed nothing."
            ) from exc
        raise StorageError(f"{self.location}: Redis refused the operation: {exc}") from exc

    def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except redis.RedisError as exc:
            self._fail(exc)

    def _run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run a registered script in one round trip."""
        # EVALSHA straight away: redis-py's Script.__call__ costs about 30 us
        # more per call, a fifth of a whole small write on a local server.
        try:
            try:
                command = self._client.execute_command  # untyped in redis-py
                return command("EVALSHA", script.sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]
            except redis.exceptions.NoScriptError:
                return script(keys=keys, args=args)  # loads it (a new or flushed server)
        except redis.RedisError as exc:
            self._fail(exc)

    def _hash(self, user_id: Key) -> str:
        return f"{self._prefix}user:{encode_key(user_id)}"

    def _script_keys(self, user_id: Key) -> list[str]:
        """KEYS of every write script: the user's hash, the users set, the seen zset."""
        return [self._hash(user_id), self._users, self._seen]

    def _set_args(self, user_id: Key, key_name: Key, record: bytes) -> list[Any]:
        """ARGV of the set script."""
        return [
            self._prefix,
            encode_key(key_name),
            record,
            encode_key(user_id),
            REPLACED_CHUNK_SECONDS,
        ]

    def _chunk_key(self, version: str, index: int) -> str:
        return f"{self._prefix}chunk:{version}:{index}"

    def _chunk_keys(self, record: bytes) -> list[str]:
        version, count = record[1:].decode().split(":")
        return [self._chunk_key(version, index) for index in range(int(count))]

    def _read_chunks(self, keys: list[str]) -> Iterator[bytes]:
        for key in keys:
            chunk = self._call(self._client.get, key)
            if chunk is None:
                raise _ChunkVanished(key)
            yield chunk

    def _load(self, record: bytes) -> Any:
        if not is_chunked(record):
            return self.codec.load_record(record)
        self.codec.check_tag(record[:1])
        return self.codec.load(self._read_chunks(self._chunk_keys(record)))

    def get(self, user_id: Key, key_name: Key) -> Any:
        """Return the stored value, or :data:`MISSING`."""
        field = encode_key(key_name)
        for _ in range(_READ_ATTEMPTS):
            record = self._call(self._client.hget, self._hash(user_id), field)
            if record is None:
                return MISSING
            try:
                return self._load(record)
            except _ChunkVanished:
                continue  # replaced while we read it: read the new value
        raise StorageError(f"{self.location}: the value kept changing while it was read; retry")

    def contains(self, user_id: Key, key_name: Key) -> bool:
        """Whether a value is stored, without reading it."""
        return bool(self._call(self._client.hexists, self._hash(user_id), encode_key(key_name)))

    def _record(self, value: Any) -> tuple[bytes, list[str]]:
        """Serialize ``value``; big values' chunks are stored, pending, first."""
        version = ""  # made on the first chunk: most values have none
        written: list[str] = []

        def put(chunk: bytes) -> None:
            nonlocal version
            version = version or uuid.uuid4().hex
            key = self._chunk_key(version, len(written))
            self._call(self._client.set, key, chunk, ex=PENDING_CHUNK_SECONDS)
            written.append(key)

        out = ChunkWriter(put, self.chunk_size)
        try:
            self.codec.dump(value, out)
            if not written:
                return self.codec.tag + out.tail(), []
            if out.tail():
                put(out.tail())
        except BaseException:
            self._discard(written)
            raise
        return self.codec.chunked_tag + f"{version}:{len(written)}".encode(), written

    def _discard(self, keys: list[str]) -> None:
        if keys:
            try:
                self._client.delete(*keys)
            except redis.RedisError:
                logger.warning("%s: %d pending chunks left to expire", self.location, len(keys))

    def set(self, user_id: Key, key_name: Key, value: Any) -> None:
        """Store ``value``; committed when this returns."""
        record, chunks = self._record(value)
        args = self._set_args(user_id, key_name, record)
        try:
            self._run(self._set, self._script_keys(user_id), args)
        except BaseException:
            self._discard(chunks)
            raise

    def update(self, user_id: Key, key_name: Key, func: Callable[[Any], Any], default: Any) -> Any:
        """Atomically store and return ``func(old value or default)``.

        Optimistic: if another client changes the user meanwhile, ``func``
        runs again on the new value.
        """
        user_hash, field = self._hash(user_id), encode_key(key_name)
        while True:
            with self._client.pipeline() as pipe:
                try:
                    pipe.watch(user_hash)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                    record = cast(bytes | None, pipe.hget(user_hash, field))
                    old = default if record is None else self._load(record)
                    new = func(old)
                    new_record, chunks = self._record(new)
                    try:
                        pipe.multi()
                        self._set(
                            keys=self._script_keys(user_id),
                            args=self._set_args(user_id, key_name, new_record),
                            client=pipe,
                        )
                        pipe.execute()
                    except BaseException:
                        self._discard(chunks)
                        raise
                    return new
                except (redis.WatchError, _ChunkVanished):
                    continue
                except redis.RedisError as exc:
                    self._fail(exc)

    def delete(self, user_id: Key, key_name: Key) -> bool:
        """Delete one value; return whether it existed."""
        args = [self._prefix, encode_key(key_name), encode_key(user_id)]
        return bool(self._run(self._delete, self._script_keys(user_id), args))

    def keys(self, user_id: Key) -> list[Key]:
        """The user's key names, from the user's own hash."""
        fields = self._call(self._client.hkeys, self._hash(user_id))
        return [decode_key(field) for field in fields]

    def count(self, user_id: Key) -> int:
        """How many values the user has."""
        return int(self._call(self._client.hlen, self._hash(user_id)))

    def delete_user(self, user_id: Key) -> int:
        """Delete all the user's values in one script, hence atomically."""
        args = [self._prefix, encode_key(user_id)]
        return int(self._run(self._delete_user, self._script_keys(user_id), args))

    def users(self) -> list[Key]:
        """Every user id holding at least one value."""
        return [json.loads(member) for member in self._call(self._client.smembers, self._users)]

    def seen(self, user_id: Key) -> float | None:
        """The user's last recorded activity, or ``None``."""
        score = self._call(self._client.zscore, self._seen, encode_key(user_id))
        return None if score is None else float(score)

    def mark_seen(self, user_id: Key, when: float, create: bool) -> None:
        """Record activity at ``when`` (never moving it back); ``create`` adds a missing user."""
        mapping = {encode_key(user_id): when}
        self._call(self._client.zadd, self._seen, mapping, gt=True, xx=not create)

    def sessions(self) -> dict[Key, float]:
        """Every user's last recorded activity."""
        pairs = self._call(self._client.zrange, self._seen, 0, -1, withscores=True)
        return {json.loads(member): float(score) for member, score in pairs}

    def idle_users(self, cutoff: float, limit: int) -> list[Key]:
        """Up to ``limit`` users last active before ``cutoff``, oldest first."""
        members = self._call(
            self._client.zrangebyscore, self._seen, "-inf", f"({cutoff!r}", start=0, num=limit
        )
        return [json.loads(member) for member in members]

    def delete_idle_user(self, user_id: Key, cutoff: float) -> bool:
        """Delete the user if it was last active before ``cutoff``, in one script."""
        args = [self._prefix, encode_key(user_id), repr(cutoff)]
        return bool(self._run(self._delete_idle, self._script_keys(user_id), args))

    def value_sizes(self, user_id: Key | None) -> list[tuple[Key, Key, int]]:
        """``(user, key, stored bytes)`` for one user's values, or everybody's."""
        sizes = []
        for user in self.users() if user_id is None else [user_id]:
            records = self._call(self._client.hgetall, self._hash(user))
            for field, record in records.items():
                size = len(record)
                if is_chunked(record):
                    pipe = self._client.pipeline(transaction=False)
                    for key in self._chunk_keys(record):
                        pipe.strlen(key)
                    size += sum(self._call(pipe.execute))
                sizes.append((user, json.loads(field), size))
        return sizes

    def head(self, user_id: Key, key_name: Key, limit: int) -> bytes | None:
        """The first ``limit`` bytes of the stored record, tag first, or ``None``."""
        record = self._call(self._client.hget, self._hash(user_id), encode_key(key_name))
        if record is None or not is_chunked(record):
            return None if record is None else bytes(record[:limit])
        first = self._call(self._client.getrange, self._chunk_keys(record)[0], 0, limit - 1)
        return bytes(record[:1]) + bytes(first or b"")

    def close(self) -> None:
        """Close the connections this backend opened; never deletes data."""
        if self._owns_client:
            self._client.close()
