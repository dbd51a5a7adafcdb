"""Values larger than one chunk, as numbered rows of the chunks table.

A large value is never held whole: its chunks are inserted as the serializer
fills them, in the transaction that then writes the value's row (the first chunk
begins it), and read back in pieces. Its record, ``p`` or ``j`` then
``{version}:{count}`` (see :mod:`..chunk_reads`), names them; a replaced or
deleted value's chunks are deleted by the trigger in the same statement.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import NamedTuple

from ...exceptions import DeserializationError
from ...keys import Where
from ...records import continued, split, stored_size
from ..chunk_reads import ChunkVanished, parse_reference, reference
from .async_server import AsyncServer, Transaction
from .schema import Statements

#: A chunk is read in pieces of at most this many bytes, so that a reader holds
#: little beside the value it builds.
READ_PIECE = 1024 * 1024


class Written(NamedTuple):
    """A value written in a transaction: its record, its stored bytes, its chunks' version."""

    record: bytes
    size: int
    chunks: uuid.UUID | None


class AsyncPending:
    """The chunks of one value being written, each inserted as it fills; the first begins
    the transaction that will write the value's row.

    :param transaction: the write's transaction.
    :param statement: the statement that inserts a chunk.
    """

    def __init__(self, transaction: Transaction, statement: str) -> None:
        self._transaction, self._statement = transaction, statement
        self._version: uuid.UUID | None = None  # made on the first chunk: most values have none
        self._count = self._size = 0

    async def put(self, chunk: bytes) -> None:
        """Store the next chunk."""
        self._version = self._version or uuid.uuid4()
        await self._transaction.run(self._statement, (self._version, self._count, chunk))
        self._count += 1
        self._size += len(chunk)

    async def finish(self, head: bytes, tail: bytes) -> Written:
        """The value's record, from its head and the bytes after its last full chunk: whole,
        if no chunk filled; else naming its chunks, once ``tail`` is stored as the last one."""
        if self._version is None:
            record = head + tail
            return Written(record, len(record), None)
        if tail:
            await self.put(tail)
        body = reference(self._version.hex, self._count)
        return Written(continued(head) + body, stored_size(len(head), self._size), self._version)


class AsyncChunks:
    """Reads the chunks of one store.

    :param server: its database.
    :param sql: its statements.
    """

    def __init__(self, server: AsyncServer, sql: Statements) -> None:
        self._server, self._sql = server, sql

    async def read(self, body: bytes, where: Where) -> AsyncIterator[bytes]:
        """The chunks that a chunked record's ``body`` names, in pieces of at most
        :data:`READ_PIECE` bytes, each read on its own (no connection held between them).

        :raises DeserializationError: the body names chunks this library cannot have made.
        :raises ChunkVanished: a chunk is gone (its value was replaced meanwhile).
        """
        parsed = parse_reference(body)
        if parsed is None:
            user_id, key_name = where
            raise DeserializationError(
                f"the record of key_name={key_name!r} of user_id={user_id!r} holds chunk "
                f"references {body[:80]!r} that dash_database cannot have made: the record is "
                "damaged or forged, and was not used. Delete the value"
            )
        version, count = uuid.UUID(parsed[0]), parsed[1]
        for seq in range(count):
            start, length = 1, 1
            while start <= length:
                args = (start, READ_PIECE, version, seq)
                rows = await self._server.query(self._sql.read_chunk, args)
                if not rows or not rows[0][0]:
                    raise ChunkVanished(f"{version}:{seq}")
                piece, length = bytes(rows[0][0]), rows[0][1]
                yield piece
                start += len(piece)

    async def stored(self, record: bytes, recorded: int, chunks: uuid.UUID | None) -> int | None:
        """The stored bytes of a row's value, read from its chunks; ``None`` where a chunk
        is missing, or the row does not match its recorded size."""
        stored: int | None = len(record)
        if chunks is not None:
            head, body = split(record)
            rows = await self._server.query(self._sql.chunk_sizes, (chunks,))
            count, total = rows[0]
            stored = stored_size(len(head), total)
            if parse_reference(body) != (chunks.hex, count):
                stored = None
        return stored if stored == recorded else None
