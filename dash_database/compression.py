"""Compressing a value's serialized bytes (``compress="zstd"``), recorded per value.

Each compressed record says so in its header (:data:`~.records.COMPRESSED`), with the
algorithm and the serialized bytes' length, so a store that changes its setting reads
its older values still. The bytes are compressed before they are signed, and checked
before they are decompressed. Decompression is a stream, never sized by what the data
claims (a zstd frame may say it holds 100 GB): it fails as soon as the output passes
the recorded length, or the data ends before it.
"""

from __future__ import annotations

from typing import Any, Protocol

from .exceptions import DependencyMissingError, DeserializationError

#: The algorithms, by name, and their number in a record's header.
ALGORITHMS = {"zstd": 1}
#: The zstd level when none is given: fast, and several-fold on tables.
DEFAULT_LEVEL = 3
_PIECE = 1 << 20


class Readable(Protocol):
    """What compressed bytes are read from."""

    def read(self, size: int = -1, /) -> bytes: ...


class Writable(Protocol):
    """What compressed bytes are written to."""

    def write(self, data: Any) -> int: ...


def _zstandard() -> Any:
    try:
        import zstandard
    except ImportError as exc:
        raise DependencyMissingError(
            'compress="zstd" needs zstandard: pip install "dash_database[zstd]"'
        ) from exc
    return zstandard


def check(compress: str | None, level: int | None) -> None:
    """Check the store's compression options.

    :raises ValueError: an unknown algorithm, or a level without one.
    :raises ~dash_database.exceptions.DependencyMissingError: zstandard is missing.
    """
    if compress is None:
        if level is not None:
            raise ValueError("compress_level needs compress='zstd'")
        return
    if compress not in ALGORITHMS:
        raise ValueError(f"compress must be None or one of {tuple(ALGORITHMS)}, not {compress!r}")
    _zstandard()


class Compressor:
    """A write-only file that compresses what is written into ``out``.

    :param out: where the compressed bytes go.
    :param level: the zstd level.
    """

    def __init__(self, out: Writable, level: int) -> None:
        self._zstd = _zstandard()
        compressor = self._zstd.ZstdCompressor(level=level)
        self._writer = compressor.stream_writer(out, closefd=False, write_return_read=True)
        self._size = 0

    def write(self, data: Any) -> int:
        """Compress ``data`` (any bytes-like object); return its length."""
        size = memoryview(data).nbytes
        self._writer.write(data)
        self._size += size
        return size

    def finish(self) -> bytes:
        """End the compressed stream; return the header fields that record it."""
        self._writer.flush(self._zstd.FLUSH_FRAME)
        return bytes((ALGORITHMS["zstd"],)) + self._size.to_bytes(8, "big")


class Decompressed:
    """A read-only file over compressed bytes, never yielding more than the recorded length.

    :param source: the compressed bytes (already checked, when signed).
    :param fields: the record's compression fields.
    :raises DeserializationError: an algorithm this version does not know.
    """

    def __init__(self, source: Readable, fields: bytes) -> None:
        if fields[:1] != bytes((ALGORITHMS["zstd"],)):
            raise DeserializationError(f"stored value is compressed with {fields[:1]!r}; unknown")
        zstd = _zstandard()
        self._left = int.from_bytes(fields[1:9], "big")
        self._reader = zstd.ZstdDecompressor().stream_reader(source, read_size=_PIECE)
        self._error: type[Exception] = zstd.ZstdError
        # Decompressed bytes not read yet: self._buffer[self._at:]. Small reads (the
        # unpickler's) take slices without copying what is left.
        self._buffer, self._at = b"", 0

    def _next(self) -> bytes:
        """The next decompressed piece, checked against the recorded length (empty: the end)."""
        try:
            piece = self._reader.read(_PIECE)
        except self._error as exc:
            raise DeserializationError(f"stored value cannot be decompressed: {exc}") from exc
        if len(piece) > self._left:
            raise DeserializationError("stored value decompresses past its recorded length")
        self._left -= len(piece)
        if not piece and self._left:
            raise DeserializationError("stored value decompresses short of its recorded length")
        return bytes(piece)

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left when negative)."""
        start, have = self._at, len(self._buffer) - self._at
        if 0 <= size <= have:  # most reads: a slice of what is already decompressed
            self._at += size
            return self._buffer[start : self._at]
        # A large read gathers pieces and joins them once: never a copy per piece.
        pieces = [self._buffer[start:]]
        while size < 0 or have < size:
            piece = self._next()
            if not piece:
                break
            pieces.append(piece)
            have += len(piece)
        self._buffer, self._at = b"", 0
        if 0 <= size < have:  # keep what the last piece holds past the request
            self._buffer = pieces[-1]
            self._at = len(pieces[-1]) - (have - size)
            pieces[-1] = pieces[-1][: self._at]
        return b"".join(pieces)

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` as far as the data goes, piece by piece (the unpickler's way to
        read a large array: no copy of it beside the buffer); return the bytes copied."""
        target, done = memoryview(buffer).cast("B"), 0
        while done < len(target):
            if self._at == len(self._buffer):
                self._buffer, self._at = self._next(), 0
                if not self._buffer:
                    break
            size = min(len(target) - done, len(self._buffer) - self._at)
            target[done : done + size] = memoryview(self._buffer)[self._at : self._at + size]
            done, self._at = done + size, self._at + size
        return done

    def readline(self) -> bytes:
        """Up to and including the next newline (pickle needs it for old opcodes)."""
        line = b""
        while True:
            end = self._buffer.find(b"\n", self._at)
            if end >= 0:
                line += self._buffer[self._at : end + 1]
                self._at = end + 1
                return line
            line += self._buffer[self._at :]
            self._buffer, self._at = self._next(), 0
            if not self._buffer:
                return line
