# Written by tools/unasync.py from async_chunks.py: edit that file, then run the script.
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
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from ... import concurrency
from ...exceptions import DashDatabaseError, DeserializationError
from ...keys import Key, Where, encode_key
from ...records import continued, inline, is_chunked, split, stored_size
from ...serialization import Codec, Fill
from ...streams import ChunkWriter
from ..chunk_reads import ChunkVanished, parse_reference, reference
from . import scripts
from .layout import Layout
from .server import Server
from .wire import Script

logger = logging.getLogger("dash_database")

#: Chunks of a value being written expire unless its record is committed:
#: a writer that dies halfway leaves nothing behind for long.
PENDING_CHUNK_SECONDS = 3600
#: A chunk is read in replies of at most this many bytes (see :meth:`Chunks.read`).
READ_PIECE = 1024 * 1024
_REFS_SCRIPT = Script.of(scripts.REFS)


class Written(NamedTuple):
    """A value written for the set script: its record, its pending chunks, its stored bytes."""

    record: bytes
    chunks: list[str]
    size: int


class Chunks:
    """The chunks of one store on one server.

    :param server: the server.
    :param layout: the store's key names.
    """

    def __init__(self, server: Server, layout: Layout) -> None:
        self._server, self._layout = server, layout

    def declared(self, values: str, chunk_key: Callable[[str, int], str]) -> list[str]:
        """The chunk keys to give a script that answered ``NEED_CHUNKS`` for the values hash
        ``values``: every chunk of each chunked record, or only the last one of a record whose
        last chunk is gone (damaged: the script then leaves its chunks alone).

        :param chunk_key: the name of a chunk (version, index) of these records.
        """
        found = [parse_reference(ref) for ref in self._server.run(_REFS_SCRIPT, [values], [])]
        valid = [parsed for parsed in found if parsed is not None]
        lasts = [chunk_key(version, count - 1) for version, count in valid]
        pipe = (self._server.client()).pipeline(transaction=False)
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
        parsed = parse_reference(reference)
        if parsed is None:
            raise DeserializationError(
                f"the record of key_name={key_name!r} of user_id={user_id!r} holds chunk "
                f"references {reference[:80]!r} that dash_database cannot "
                "have made: the record is damaged or forged, and was not used. Delete the value"
            )
        return self._layout.chunks(encode_key(user_id), *parsed)

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
        pipe = (self._server.client()).pipeline(transaction=False)
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
        client = self._server.client()
        first = self._server.call(client.getrange, first_chunk, 0, limit - 1)
        return head + bytes(first or b"")

    def read(self, keys: list[str]) -> Iterator[bytes]:
        """The chunks, in pieces of at most :data:`READ_PIECE` bytes, as the reader asks.

        A whole 8 MiB chunk in one reply costs the client several copies of it at once
        (its socket buffer, the reply, ours); pieces keep that transient small beside
        a large value. Chunks are never rewritten (each value has new ones), so a piece
        shorter than the chunk's length means the chunk is gone.

        :raises ChunkVanished: a chunk is gone (its value was replaced meanwhile).
        """
        client = self._server.client()
        for key in keys:
            pipe = client.pipeline(transaction=False)
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
                piece = self._server.call(client.getrange, key, start, end)

    def write(self, codec: Codec, value: Any, where: Where, chunk_size: int) -> Written:
        """Serialize ``value`` (``where``'s) into its record; a big value's chunks are stored,
        pending, first."""
        return self.write_from(lambda out: codec.dump(value, out, where), where[0], chunk_size)

    def write_from(self, fill: Fill, user_id: Key, chunk_size: int) -> Written:
        """Like :meth:`write`, with the serialized bytes written by ``fill``."""
        pending = _Pending(self._server, self._layout, encode_key(user_id))
        try:
            head, tail = concurrency.fill(fill, pending.put, chunk_size)
            return pending.finish(head, tail)
        except BaseException:
            self.discard(pending.keys)
            raise

    def write_raw(
        self, head: bytes, pieces: Iterable[bytes], user_id: Key, chunk_size: int
    ) -> Written:
        """Like :meth:`write`, for a record read elsewhere: its head, and its body in pieces
        (copied, never decoded, so that each chunk is written as soon as it fills)."""
        pending = _Pending(self._server, self._layout, encode_key(user_id))
        full: list[bytes] = []
        out = ChunkWriter(full.append, chunk_size)
        try:
            for piece in pieces:
                out.write(piece)
                for chunk in full:
                    pending.put(chunk)
                full.clear()
            return pending.finish(inline(head), out.tail())
        except BaseException:
            self.discard(pending.keys)
            raise

    def discard(self, keys: list[str]) -> None:
        """Delete the pending chunks of a value whose record was not committed."""
        if keys:
            try:
                self._server.write("DEL", *keys)
            except DashDatabaseError:
                location = self._server.location
                logger.warning("%s: %d pending chunks left to expire", location, len(keys))


class _Pending:
    """The chunks of one value being written, each stored with an expiry as it fills.

    :param member: the JSON id of the value's user.
    """

    __slots__ = ("_layout", "_member", "_server", "_size", "_version", "keys")

    def __init__(self, server: Server, layout: Layout, member: str) -> None:
        self._server, self._layout, self._member = server, layout, member
        self._version = ""  # made on the first chunk: most values have none
        self.keys: list[str] = []
        self._size = 0

    def put(self, chunk: bytes) -> None:
        """Store the next chunk."""
        self._version = self._version or uuid.uuid4().hex
        key = self._layout.chunk(self._member, self._version, len(self.keys))
        client = self._server.client()
        self._server.call(client.set, key, chunk, ex=PENDING_CHUNK_SECONDS)
        self.keys.append(key)
        self._size += len(chunk)

    def finish(self, head: bytes, tail: bytes) -> Written:
        """The value's record, from its head and the bytes after its last full chunk: whole,
        if no chunk filled; else naming its chunks, once ``tail`` is stored as the last one."""
        if not self.keys:
            record = head + tail
            return Written(record, [], len(record))
        if tail:
            self.put(tail)
        body = reference(self._version, len(self.keys))
        return Written(continued(head) + body, self.keys, stored_size(len(head), self._size))
