"""How values become bytes and back, the same way for every backend.

A stored *record* starts with one tag byte that names its serializer and
whether the value continues in chunks:

* ``P`` / ``J``: a pickle / JSON value, complete in the record;
* ``p`` / ``j``: a pickle / JSON value whose bytes continue elsewhere, where
  the rest of the record says: in numbered chunks (Redis: ``{version}:{count}``)
  or in the side file it names (a SQLite file keeps large values beside it).

That rule lives here only: :data:`CHUNKED_TAGS`, and the SQL and Lua forms
generated from it (:func:`sql_is_chunked`, :func:`lua_is_chunked`).

Values are written as a stream, into chunks of :data:`CHUNK_SIZE` or a side
file, so that a 1 GB DataFrame never exists as one 1 GB ``bytes`` object on
top of the frame itself, and no engine's size limit for one blob applies.
"""

from __future__ import annotations

import itertools
import json
import math
import pickle
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from .exceptions import DashDatabaseError, DeserializationError, SerializationError
from .signing import MAGIC, Signer, Where, refuse_signed

#: Bytes per chunk. Below it a value is stored in one record.
CHUNK_SIZE = 8 * 1024 * 1024

#: The tags of records whose value continues elsewhere (see the module docstring).
CHUNKED_TAGS = (b"p", b"j")

SERIALIZERS = ("pickle", "json")
_TAGS = {"pickle": b"P", "json": b"J"}
_NAMES = {b"P": "pickle", b"J": "json"}
_JSON_SCALARS = (str, int, float, bool, type(None))


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


def _check_json(value: Any, path: str) -> None:
    # json.dumps quietly turns tuples into lists and int dict keys into strs,
    # so the value read back would differ from the one stored. Refuse instead.
    if isinstance(value, _JSON_SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise SerializationError(f"{path} is {value!r}, which JSON cannot represent")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"{path} has the key {key!r}; with serializer='json' dict keys must be str"
                )
            _check_json(item, f"{path}[{key!r}]")
        return
    raise SerializationError(
        f"{path} is a {type(value).__name__}; serializer='json' stores only dict (str keys), "
        "list, str, int, float, bool and None. Convert it, or use serializer='pickle'"
    )


class PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data only: ``str``, ``bytes``, numbers, ``None``, and lists, tuples,
    dicts and sets of them. Every global is refused, so nothing can run code."""

    def find_class(self, module: str, name: str, /) -> Any:
        """Refuse: a global is what lets a pickle run code."""
        raise pickle.UnpicklingError(f"{module}.{name} is not plain data; it was not loaded")


class Codec:
    """One serializer: turns values into a record stream and back.

    Every call names whose value it is (``where``: user id and key name): a
    codec with a :class:`~dash_database.signing.Signer` signs the bytes for
    that user and key, and checks them before a byte is deserialized.

    :param name: ``"pickle"`` or ``"json"``.
    :param plain_only: pickle only: load plain data and refuse the rest
        (:class:`PlainUnpickler`), for readers that do not trust the store.
    :param signer: sign and verify with these keys; ``None``: unsigned values.
    :raises ValueError: ``name`` is not a known serializer.
    """

    def __init__(self, name: str, plain_only: bool = False, signer: Signer | None = None) -> None:
        if name not in SERIALIZERS:
            raise ValueError(f"serializer must be one of {SERIALIZERS}, not {name!r}")
        self.name = name
        self._unpickler = PlainUnpickler if plain_only else pickle.Unpickler
        self.signer = signer
        self.tag = _TAGS[name]
        self.chunked_tag = self.tag.lower()

    def plain(self) -> Codec:
        """This codec, loading plain data only (see ``plain_only``)."""
        return Codec(self.name, plain_only=True, signer=self.signer)

    def dump(self, value: Any, out: Writable, where: Where) -> None:
        """Write the serialized (and, with a signer, signed) ``value`` to ``out``.

        :raises SerializationError: the value cannot be serialized; errors raised
            by ``out`` itself (a storage error) pass through unchanged.
        """
        signing = None if self.signer is None else self.signer.writer(out, where, self.name)
        try:
            if self.name == "json":
                _check_json(value, "value")
                (signing or out).write(json.dumps(value, ensure_ascii=False).encode())
            else:
                # Protocol 5 writes large buffers (numpy, pandas) straight to
                # ``out`` without first copying them into one bytes object.
                pickle.Pickler(signing or out, protocol=5).dump(value)
        except DashDatabaseError:
            raise
        except Exception as exc:  # pickle raises many types for one meaning
            raise SerializationError(
                f"value cannot be stored with serializer={self.name!r}: {exc}"
            ) from exc
        if signing is not None:
            signing.finish()

    def check_tag(self, tag: bytes) -> None:
        """Raise a clear error if a record was written by another serializer.

        :raises DeserializationError: the tag is not this codec's.
        """
        if tag.upper() != self.tag:
            other = _NAMES.get(tag.upper())
            if other is None:
                raise DeserializationError(f"stored record has unknown tag {tag!r}; it is damaged")
            raise DeserializationError(
                f"the value was stored with serializer={other!r}, but this DashDatabase "
                f"uses serializer={self.name!r}; open it with serializer={other!r} to read it"
            )

    def load(self, chunks: Iterable[bytes], where: Where) -> Any:
        """Rebuild a value from its stored bytes, given as chunks.

        :raises DeserializationError: the bytes cannot be read back, or (with a
            signer) are unsigned, signed with another key, or altered.
        """
        if self.signer is not None:
            return self._decode(
                ChunkReader(self.signer.frames(ChunkReader(chunks), where, self.name))
            )
        chunks = iter(chunks)
        first = next(chunks, b"")
        refuse_signed(bytes(first[: len(MAGIC)]), where)
        return self._decode(ChunkReader(itertools.chain([first], chunks)))

    def load_file(self, file: Seekable, where: Where) -> Any:
        """Rebuild a value from its stored bytes, read from ``file``.

        :raises DeserializationError: as :meth:`load`.
        """
        if self.signer is not None:
            return self._decode(ChunkReader(self.signer.frames(file, where, self.name)))
        refuse_signed(file.read(len(MAGIC)), where)
        file.seek(0)  # and the unpickler reads the file itself: no copy in between
        return self._decode(file)

    def _decode(self, file: Readable) -> Any:
        try:
            if self.name == "json":
                return json.loads(file.read())
            return self._unpickler(file).load()
        except DashDatabaseError:
            raise  # the backend failed to deliver a chunk, or a signature: its own error
        except Exception as exc:
            raise DeserializationError(f"stored value cannot be read back: {exc}") from exc

    def load_record(self, record: bytes, where: Where) -> Any:
        """Rebuild a value stored complete in one record (tag byte included)."""
        if record[:1] != self.tag:
            self.check_tag(bytes(record[:1]))
        data: bytes | memoryview | None
        if self.signer is not None:
            data = self.signer.record_data(record, where, self.name)
            if data is None:  # several frames: the general path
                return self.load([record[1:]], where)
        else:
            # A small record's bytes are copied (faster than a view); a large one's never.
            data = record[1:] if len(record) < 4096 else memoryview(record)[1:]
            if data[:1] == MAGIC[:1]:  # no serializer's output starts with a NUL
                refuse_signed(bytes(data[: len(MAGIC)]), where)
        try:
            if self.name == "json":
                return json.loads(bytes(data))
            if self._unpickler is pickle.Unpickler:
                return pickle.loads(data)  # the C fast path, for every normal read
            return self._unpickler(ChunkReader([data])).load()
        except Exception as exc:
            raise DeserializationError(f"stored value cannot be read back: {exc}") from exc


#: Writes a value's serialized bytes to a file-like object.
Fill = Callable[[Writable], None]

#: A value as stored, never decoded: its serializer's tag (``P`` or ``J``) and
#: its serialized bytes, as a stream of pieces.
RawValue = tuple[bytes, Iterator[bytes]]


def codec_for_tag(tag: bytes) -> Codec:
    """The codec whose records start with ``tag`` (complete or chunked).

    :raises DeserializationError: not a tag of this library.
    """
    name = _NAMES.get(bytes(tag).upper())
    if name is None:
        raise DeserializationError(f"stored record has unknown tag {bytes(tag)!r}; it is damaged")
    return Codec(name)


def copy_pieces(pieces: Iterable[bytes]) -> Fill:
    """The :data:`Fill` that writes bytes serialized elsewhere, piece by piece."""

    def fill(out: Writable) -> None:
        for piece in pieces:
            out.write(piece)

    return fill


def is_chunked(record: bytes) -> bool:
    """Whether the value of ``record`` continues elsewhere (in chunks or a side file)."""
    return bytes(record[:1]) in CHUNKED_TAGS


def sql_is_chunked(column: str) -> str:
    """The SQL condition "the record in ``column`` continues elsewhere"."""
    tags = ", ".join(f"x'{tag.hex()}'" for tag in CHUNKED_TAGS)
    return f"length({column}) > 1 AND substr({column}, 1, 1) IN ({tags})"


def lua_is_chunked(variable: str) -> str:
    """The Lua condition "the record in ``variable`` continues elsewhere"."""
    return " or ".join(f"string.byte({variable}, 1) == {tag[0]}" for tag in CHUNKED_TAGS)
