"""Values larger than one chunk, as numbered Redis strings.

Redis refuses strings over 512 MB, and one large string would be held whole
in memory on both ends; so a large value is written as chunks first, with an
expiry, and its record (``p`` or ``j``, then ``{version}:{count}``) is
committed after them by the set script, which makes them permanent. Chunks
live in their user's bucket (see :mod:`.layout`), so that the scripts for one
user touch one hash slot.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import redis

from ...exceptions import DashDatabaseError, DeserializationError
from ...keys import Key, Where, encode_key
from ...records import continued, is_chunked, split, stored_size
from ...serialization import ChunkWriter, Codec, Fill
from . import scripts
from .layout import Layout
from .scripts import MAX_CHUNKS
from .server import Server

logger = logging.getLogger("dash_database")

#: Chunks of a value being written expire unless its record is committed:
#: a writer that dies halfway leaves nothing behind for long.
PENDING_CHUNK_SECONDS = 3600
# The chunk references a record may hold, as this module writes them.
_REFS = re.compile(rb"([0-9a-f]{32}):([0-9]{1,6})")
#: A chunk is read in replies of at most this many bytes (see :meth:`Chunks.read`).
READ_PIECE = 1024 * 1024


class Written(NamedTuple):
    """A value written for the set script: its record, its pending chunks, its stored bytes."""

    record: bytes
    chunks: list[str]
    size: int


class ChunkVanished(DashDatabaseError):
    """A concurrent write replaced the value while we read its chunks."""


class Chunks:
    """The chunks of one store on one server.

    :param server: the server.
    :param layout: the store's key names.
    """

    def __init__(self, server: Server, layout: Layout) -> None:
        self._server, self._layout = server, layout
        self._refs = server.client.register_script(scripts.REFS)

    def declared(self, values: str, chunk_key: Callable[[str, int], str]) -> list[str]:
        """The chunk keys to give a script that answered ``NEED_CHUNKS`` for the values hash
        ``values``: every chunk of each chunked record, or only the last one of a record whose
        last chunk is gone (damaged: the script then leaves its chunks alone).

        :param chunk_key: the name of a chunk (version, index) of these records.
        """
        found = [_REFS.fullmatch(ref) for ref in self._server.run(self._refs, [values], [])]
        valid = [(m[1].decode(), int(m[2])) for m in found if m and 1 <= int(m[2]) <= MAX_CHUNKS]
        lasts = [chunk_key(version, count - 1) for version, count in valid]
        pipe = self._server.client.pipeline(transaction=False)
        for last in lasts:
            pipe.exists(last)
        there = self._server.call(pipe.execute) if lasts else []
        keys: list[str] = []
        for (version, count), last, exists in zip(valid, lasts, there, strict=True):
            keys += [chunk_key(version, n) for n in range(count)] if exists else [last]
        return keys

    def keys_of(self, reference: bytes, user_id: Key, key_name: Key) -> list[str]:
        """The chunk keys that the body of a chunked record of ``user_id`` names.

        :raises DeserializationError: the record holds references this library
            cannot have made.
        """
        match = _REFS.fullmatch(reference)
        if match is None or not 1 <= int(match[2]) <= MAX_CHUNKS:
            raise DeserializationError(
                f"the record of key_name={key_name!r} of user_id={user_id!r} holds chunk "
                f"references {reference[:80]!r} that dash_database cannot "
                "have made: the record is damaged or forged, and was not used. Delete the value"
            )
        return self._layout.chunks(encode_key(user_id), match[1].decode(), int(match[2]))

    def stored_size(self, record: bytes, user_id: Key, key_name: Key) -> int | None:
        """The stored bytes of the value of ``record``: its head and its chunks (or the whole
        record); ``None`` if a chunk is missing or the record is damaged."""
        if not is_chunked(record):
            return len(record)
        try:
            head, reference = split(record)
            keys = self.keys_of(reference, user_id, key_name)
        except DeserializationError:
            return None
        pipe = self._server.client.pipeline(transaction=False)
        for key in keys:
            pipe.strlen(key)
        lengths = self._server.call(pipe.execute)
        return None if 0 in lengths else stored_size(len(head), sum(lengths))

    def head(self, record: bytes, user_id: Key, key_name: Key, limit: int) -> bytes:
        """The head of ``record`` (inline form) and the first ``limit`` bytes of its body."""
        head, body = split(record)
        if not is_chunked(record):
            return head + body[:limit]
        first_chunk = self.keys_of(body, user_id, key_name)[0]
        first = self._server.call(self._server.client.getrange, first_chunk, 0, limit - 1)
        return head + bytes(first or b"")

    def read(self, keys: list[str]) -> Iterator[bytes]:
        """The chunks, in pieces of at most :data:`READ_PIECE` bytes, as the reader asks.

        A whole 8 MiB chunk in one reply costs the client several copies of it at once
        (its socket buffer, the reply, ours); pieces keep that transient small beside
        a large value. Chunks are never rewritten (each value has new ones), so a piece
        shorter than the chunk's length means the chunk is gone.

        :raises ChunkVanished: a chunk is gone (its value was replaced meanwhile).
        """
        for key in keys:
            pipe = self._server.client.pipeline(transaction=False)
            pipe.strlen(key)
            pipe.getrange(key, 0, READ_PIECE - 1)
            length, piece = self._server.call(pipe.execute)
            start = 0
            while True:
                if not piece or len(piece) != min(READ_PIECE, length - start):
                    raise ChunkVanished(key)
                yield piece
                start += len(piece)
                if start >= length:
                    break
                end = start + READ_PIECE - 1
                piece = self._server.call(self._server.client.getrange, key, start, end)

    def write(self, codec: Codec, value: Any, where: Where, chunk_size: int) -> Written:
        """Serialize ``value`` (``where``'s) into its record; a big value's chunks are stored,
        pending, first."""
        return self.write_from(lambda out: codec.dump(value, out, where), where[0], chunk_size)

    def write_from(self, fill: Fill, user_id: Key, chunk_size: int) -> Written:
        """Like :meth:`write`, with the serialized bytes written by ``fill``."""
        member = encode_key(user_id)
        version = ""  # made on the first chunk: most values have none
        written: list[str] = []
        size = 0

        def put(chunk: bytes) -> None:
            nonlocal version, size
            version = version or uuid.uuid4().hex
            key = self._layout.chunk(member, version, len(written))
            self._server.call(self._server.client.set, key, chunk, ex=PENDING_CHUNK_SECONDS)
            written.append(key)
            size += len(chunk)

        out = ChunkWriter(put, chunk_size)
        try:
            head = fill(out)
            if not written:
                record = head + out.tail()
                return Written(record, [], len(record))
            if out.tail():
                put(out.tail())
        except BaseException:
            self.discard(written)
            raise
        reference = f"{version}:{len(written)}".encode()
        return Written(continued(head) + reference, written, stored_size(len(head), size))

    def discard(self, keys: list[str]) -> None:
        """Delete the pending chunks of a value whose record was not committed."""
        if keys:
            try:
                self._server.client.delete(*keys)
            except redis.RedisError:
                location = self._server.location
                logger.warning("%s: %d pending chunks left to expire", location, len(keys))
