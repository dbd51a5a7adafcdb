"""File-like adapters between values and the chunks engines store them in.

A value is written as a stream into chunks of :data:`CHUNK_SIZE` (or a side file) and read
back from an iterator of chunks, so that a 1 GB DataFrame never exists as one 1 GB
``bytes`` object on top of the frame itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

#: Bytes per chunk. Below it a value is stored in one record.
CHUNK_SIZE = 8 * 1024 * 1024


class ChunkWriter:
    """A write-only file that hands full chunks to ``on_chunk`` as they fill.

    :param on_chunk: called with each full chunk, in order.
    :param chunk_size: bytes per chunk.
    """

    def __init__(self, on_chunk: Callable[[bytes], None], chunk_size: int = CHUNK_SIZE) -> None:
        self._on_chunk = on_chunk
        self._size = chunk_size
        self._buf = bytearray()

    def write(self, data: Any) -> int:
        """Append ``data`` (any bytes-like object); return its length."""
        view = memoryview(data).cast("B")
        written = len(view)
        while view:
            room = self._size - len(self._buf)
            self._buf += view[:room]
            view = view[room:]
            if len(self._buf) == self._size:
                self._on_chunk(bytes(self._buf))
                self._buf.clear()
        return written

    def tail(self) -> bytes:
        """The bytes written since the last full chunk."""
        return bytes(self._buf)


class Writable(Protocol):
    """Any write-only file: what :meth:`Codec.dump` writes to."""

    def write(self, data: Any) -> int: ...


class Readable(Protocol):
    """Any read-only binary file: what :meth:`Codec.load_file` reads from."""

    def read(self, size: int = -1, /) -> bytes: ...
    def readline(self) -> bytes: ...


class Seekable(Readable, Protocol):
    """A read-only binary file that can go back to its start (a side file)."""

    def seek(self, offset: int, whence: int = 0, /) -> int: ...


class ChunkReader:
    """A read-only file over an iterator of chunks, for :func:`pickle.load`."""

    def __init__(self, chunks: Iterable[bytes | memoryview]) -> None:
        self._chunks: Iterator[bytes | memoryview] = iter(chunks)
        self._view = memoryview(b"")

    def _fill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._view = memoryview(chunk)
                return True
        return False

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` as far as the data goes; return the bytes copied."""
        target = memoryview(buffer).cast("B")
        done = 0
        while done < len(target) and (self._view or self._fill()):
            n = min(len(target) - done, len(self._view))
            target[done : done + n] = self._view[:n]
            self._view = self._view[n:]
            done += n
        return done

    def read(self, size: int = -1) -> bytes:
        """Read ``size`` bytes, or everything left when ``size`` is negative."""
        if size < 0:
            rest = [bytes(self._view), *list(self._chunks)]
            self._view = memoryview(b"")
            return b"".join(rest)
        # The size comes from the stream, which anyone who can write the store
        # may have crafted: gather what arrives instead of allocating it first.
        pieces: list[memoryview] = []
        wanted = size
        while wanted and (self._view or self._fill()):
            piece = self._view[:wanted]
            self._view = self._view[len(piece) :]
            pieces.append(piece)
            wanted -= len(piece)
        return b"".join(pieces)

    def readline(self) -> bytes:
        """Read up to and including the next newline (pickle needs it for old opcodes)."""
        line = bytearray()
        while self._view or self._fill():
            end = bytes(self._view).find(b"\n")
            if end >= 0:
                line += self._view[: end + 1]
                self._view = self._view[end + 1 :]
                break
            line += self._view
            self._view = memoryview(b"")
        return bytes(line)
