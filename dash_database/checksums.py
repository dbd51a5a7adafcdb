"""Checksums of unsigned values (``checksum=True``, the default), recorded per value.

A signed value needs none: every frame carries a MAC. An unsigned one carries, in its
record's header (:data:`~.records.CHECKSUMMED`), the CRC-32 of its body as stored (after
any compression), so that a flipped byte, a side file cut short, or two side files
swapped raise :class:`~dash_database.exceptions.DeserializationError` naming the user and
key, instead of reading back as another value. CRC-32 because it catches every burst of
damage up to 32 bits and costs little next to reading the bytes; it is no defence
against someone who writes the store on purpose (that is what ``secret_key`` is for).

A value in one record or in a side file is checked before a byte of it is decoded. A
value read as a stream of chunks (Redis, memory) is checked as its last byte arrives, and
the reader reads to that byte before it returns the value.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from .exceptions import DeserializationError
from .keys import Where

#: Bytes of a checksum in a record's header.
SIZE = 4
_PIECE = 1 << 20


def of(data: Any, running: int = 0) -> int:
    """The CRC-32 of ``data`` (any contiguous buffer), continued from ``running``."""
    return zlib.crc32(data, running)


def field(running: int) -> bytes:
    """The header field of a finished checksum."""
    return running.to_bytes(SIZE, "big")


def _damaged(where: Where) -> DeserializationError:
    user_id, key_name = where
    return DeserializationError(
        f"the stored value of key_name={key_name!r} of user_id={user_id!r} does not match "
        "its checksum: it is damaged. Delete it, or run the 'repair' command"
    )


def check(body: bytes | memoryview, expected: bytes, where: Where) -> None:
    """Check the whole body of a value against its header field.

    :raises DeserializationError: it does not match.
    """
    if field(of(body)) != expected:
        raise _damaged(where)


def verified(pieces: Iterable[bytes], expected: bytes, where: Where) -> Iterator[bytes]:
    """``pieces`` as they come; once they end, raise if their checksum does not match.

    :raises DeserializationError: as the last piece is passed.
    """
    running = 0
    for piece in pieces:
        running = of(piece, running)
        yield piece
    if field(running) != expected:
        raise _damaged(where)


def check_file(file: Any, expected: bytes, where: Where) -> None:
    """Check the body of a value in ``file`` (read from where it is to its end).

    :raises DeserializationError: it does not match.
    """
    running = 0
    for piece in iter(lambda: file.read(_PIECE), b""):
        running = of(piece, running)
    if field(running) != expected:
        raise _damaged(where)


class ChecksumWriter:
    """A write-only file that passes what it is given to ``out``, keeping its checksum.

    :param out: where the body goes.
    """

    def __init__(self, out: Any) -> None:
        self._out = out
        self._running = 0

    def write(self, data: Any) -> int:
        """Write ``data`` to ``out``; return what ``out`` returns."""
        self._running = of(data, self._running)
        written: int = self._out.write(data)
        return written

    def finish(self) -> bytes:
        """The header field of everything written."""
        return field(self._running)
