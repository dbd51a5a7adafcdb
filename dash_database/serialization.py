"""How values become bytes and back, the same way for every backend.

A :class:`Codec` writes a value as the body of a record and returns the
record's head (its tag, and a header if it is signed: see :mod:`.records`);
it reads a value back from a head and a body.

Values are written as a stream, into chunks of :data:`CHUNK_SIZE` or a side
file, so that a 1 GB DataFrame never exists as one 1 GB ``bytes`` object on
top of the frame itself, and no engine's size limit for one blob applies.
"""

from __future__ import annotations

import itertools
import json
import math
import pickle
import pickletools
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Protocol, cast

from . import dataformats, records
from .compression import DEFAULT_LEVEL, Compressor, Decompressed
from .exceptions import DashDatabaseError, DeserializationError, SerializationError
from .keys import Where
from .records import COMPRESSED
from .signing import LEGACY_HEADER_SIZE, LEGACY_MAGIC, Signer, refuse_signed

#: Bytes per chunk. Below it a value is stored in one record.
CHUNK_SIZE = 8 * 1024 * 1024

#: Each serializer, and the kinds of record it writes and reads (see :mod:`.records`).
KINDS = {"pickle": (b"P",), "json": (b"J",), "data": dataformats.KINDS}
SERIALIZERS = tuple(KINDS)
# The serializer a kind names, for reading: JSON is read as JSON whoever wrote it.
_NAMES = {kind: name for name in ("data", "json", "pickle") for kind in KINDS[name]}
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
    """One serializer: turns values into a record's head and body, and back.

    Every call names whose value it is (``where``: user id and key name): a
    codec with a :class:`~dash_database.signing.Signer` signs the bytes for
    that user and key, and checks them before a byte is deserialized.

    :param name: ``"pickle"``, ``"json"`` or ``"data"`` (:mod:`.dataformats`).
    :param plain_only: pickle only: load plain data and refuse the rest
        (:class:`PlainUnpickler`), for readers that do not trust the store.
    :param signer: sign and verify with these keys; ``None``: unsigned values.
    :param compress: ``"zstd"`` compresses what it writes (:mod:`.compression`); it reads
        compressed and uncompressed records alike.
    :param level: the compression level.
    :raises ValueError: ``name`` is not a known serializer.
    """

    def __init__(
        self,
        name: str,
        plain_only: bool = False,
        signer: Signer | None = None,
        compress: str | None = None,
        level: int | None = None,
    ) -> None:
        if name not in SERIALIZERS:
            raise ValueError(f"serializer must be one of {SERIALIZERS}, not {name!r}")
        self.name = name
        self._unpickler = PlainUnpickler if plain_only else pickle.Unpickler
        self.signer = signer
        self.compress, self.level = compress, level
        #: The kinds of record this codec reads; pickle's and JSON's one is also their 2.x tag.
        self.kinds = KINDS[name]
        self.kind = self.kinds[0] if name != "data" else None

    def plain(self) -> Codec:
        """This codec, loading plain data only (see ``plain_only``)."""
        return Codec(self.name, True, self.signer, self.compress, self.level)

    def dump(self, value: Any, out: Writable, where: Where) -> bytes:
        """Write the body of ``value``'s record (serialized, maybe compressed, and with a
        signer, signed) to ``out``; return the record's head, in its inline form.

        :raises SerializationError: the value cannot be serialized; errors raised
            by ``out`` itself (a storage error) pass through unchanged.
        """
        kind = self.kind or dataformats.kind_of(value)
        signing = None if self.signer is None else self.signer.start(out, kind)
        target: Writable = signing or out
        compressing = None
        if self.compress is not None:
            compressing = Compressor(target, self.level or DEFAULT_LEVEL)
            target = compressing
        try:
            if kind == b"P":
                # Protocol 5 writes large buffers (numpy, pandas) straight to
                # ``out`` without first copying them into one bytes object.
                pickle.Pickler(target, protocol=5).dump(value)
            elif self.name == "json":
                _check_json(value, "value")
                target.write(json.dumps(value, ensure_ascii=False).encode())
            else:
                dataformats.dump(value, kind, target)
        except DashDatabaseError:
            raise
        except Exception as exc:  # pickle raises many types for one meaning
            raise SerializationError(
                f"value cannot be stored with serializer={self.name!r}: {exc}"
            ) from exc
        flags, fields = (0, b"") if compressing is None else (COMPRESSED, compressing.finish())
        if signing is not None:
            return signing.finish(where, flags, fields)
        if not flags and kind in (b"P", b"J"):
            return kind  # the 2.x layout, which every 2.x version reads
        return b"H" + records.make_header(flags, kind, fields)

    def check_kind(self, head: bytes) -> None:
        """Raise a clear error if a record was written by another serializer.

        :raises DeserializationError: the record's kind is not one this codec reads.
        """
        kind = records.kind(head)
        if kind not in self.kinds:
            other = _NAMES.get(kind)
            if other is None:
                raise DeserializationError(
                    f"stored record has unknown kind {kind!r}; it is damaged"
                )
            raise DeserializationError(
                f"the value was stored with serializer={other!r}, but this DashDatabase "
                f"uses serializer={self.name!r}; open it with serializer={other!r} to read it"
            )

    def rebind(self, start: bytes, old: Where, new: Where) -> tuple[int, bytes] | None:
        """For a record that starts with ``start`` (its head at least), moved from ``old`` to
        ``new`` with its body unchanged: the length of its head, and the head to put in its
        place. ``None`` where the record binds no user (unsigned), its head is damaged, or
        its binding to ``old`` does not hold (it stays refused)."""
        if self.signer is None or not records.has_header(start):
            return None
        try:
            length = records.body_start(start)
        except DeserializationError:
            return None
        head = self.signer.rebind(start[:length], old, new)
        return None if head is None else (length, head)

    def _signed(self, head: bytes, stream: Readable, where: Where) -> Readable:
        """The serialized bytes of a signed record, whose head is ``head`` and whose body is
        ``stream``, each frame checked before it is read.

        :raises DeserializationError: another serializer's, unsigned, signed with another
            key, or altered.
        """
        assert self.signer is not None
        self.check_kind(head)
        if records.has_header(head):
            context = self.signer.open_head(head, where)
        else:  # signed by 2.3, or not at all
            header = stream.read(LEGACY_HEADER_SIZE)
            context = self.signer.legacy_context(header, where, self.name)
        return ChunkReader(self.signer.frames(stream, context))

    def _unsigned(self, head: bytes, stream: Readable, where: Where) -> Readable:
        """The serialized bytes of a record read without a key (a signed one is refused)."""
        self.check_kind(head)
        first = stream.read(len(LEGACY_MAGIC))
        refuse_signed(head, first, where)
        return ChunkReader(itertools.chain([first], iter(lambda: stream.read(CHUNK_SIZE), b"")))

    def load(self, head: bytes, chunks: Iterable[bytes], where: Where) -> Any:
        """Rebuild a value from its record's head and its body, given as chunks.

        :raises DeserializationError: the bytes cannot be read back, or are another
            serializer's; with a signer, unsigned, signed with another key, or altered;
            without one, signed.
        """
        return self._decode(head, self._serialized(head, chunks, where), where)

    def check(self, head: bytes, chunks: Iterable[bytes], where: Where) -> None:
        """Read a value as :meth:`load` does, through every check (signature, kind, the
        compressed length), without building it where that could run code: a pickle's
        opcodes are parsed (:func:`pickletools.genops`), never run.

        :raises DeserializationError: as :meth:`load`.
        """
        stream = self._serialized(head, chunks, where)
        if records.kind(head) != b"P":
            self._decode(head, stream, where)  # the other formats never run code
            return
        compressed = records.fields(head, COMPRESSED)
        file = Decompressed(stream, compressed) if compressed else stream
        try:
            # genops reads with read() and readline() only, as the unpickler does.
            for _ in pickletools.genops(cast(IO[bytes], file)):
                pass
        except DashDatabaseError:
            raise
        except Exception as exc:
            user_id, key_name = where
            raise DeserializationError(
                f"the stored value of key_name={key_name!r} of user_id={user_id!r} is not a "
                f"whole pickle ({exc}): it is damaged, or was cut short"
            ) from exc

    def _serialized(self, head: bytes, chunks: Iterable[bytes], where: Where) -> Readable:
        """The serialized bytes of the record whose head is ``head`` and body ``chunks``,
        checked as they are read (see :meth:`load`)."""
        if self.signer is not None:
            return self._signed(head, ChunkReader(chunks), where)
        if records.has_header(head):
            return self._unsigned(head, ChunkReader(chunks), where)
        self.check_kind(head)
        chunks = iter(chunks)
        first = next(chunks, b"")
        refuse_signed(head, bytes(first[: len(LEGACY_MAGIC)]), where)
        return ChunkReader(itertools.chain([first], chunks))

    def load_file(self, head: bytes, file: Seekable, where: Where) -> Any:
        """Rebuild a value from its record's head and its body, read from ``file``.

        :raises DeserializationError: as :meth:`load`.
        """
        if self.signer is not None:
            return self._decode(head, self._signed(head, file, where), where)
        if records.has_header(head):
            return self._decode(head, self._unsigned(head, file, where), where)
        self.check_kind(head)
        refuse_signed(head, file.read(len(LEGACY_MAGIC)), where)
        file.seek(0)  # and the unpickler reads the file itself: no copy in between
        return self._decode(head, file, where)

    def _decode(self, head: bytes, file: Readable, where: Where) -> Any:
        """The value of the serialized bytes in ``file``, of the record whose head is ``head``
        (``where``'s)."""
        compressed = records.fields(head, COMPRESSED)
        if compressed:
            file = Decompressed(file, compressed)
        kind = records.kind(head)
        try:
            if kind == b"P":
                return self._unpickler(file).load()
            if kind == b"J":
                return json.loads(file.read())
            return dataformats.load(kind, file)
        except DashDatabaseError:
            raise  # the backend failed to deliver a chunk, or a signature: its own error
        except Exception as exc:
            user_id, key_name = where
            raise DeserializationError(
                f"the stored value of key_name={key_name!r} of user_id={user_id!r} cannot be "
                f"read back ({exc}): it is damaged, or was cut short"
            ) from exc

    def load_record(self, record: bytes, where: Where) -> Any:
        """Rebuild a value stored complete in one record (head included)."""
        data: Any
        if record[:1] == self.kind and self.signer is None:
            # The path of every small unsigned read. A small record's bytes are
            # copied (faster than a view); a large one's never.
            data = record[1:] if len(record) < 4096 else memoryview(record)[1:]
            if data[:1] == LEGACY_MAGIC[:1]:  # no serializer's output starts with a NUL
                refuse_signed(record[:1], bytes(data[: len(LEGACY_MAGIC)]), where)
        else:
            start = records.body_start(record)
            head, body = bytes(record[:start]), memoryview(record)[start:]
            data = None
            if self.signer is not None and records.has_header(head):
                self.check_kind(head)
                data = self.signer.one_frame(head, body, where)
                if data is not None and len(data) < 4096:
                    data = bytes(data)
            if (
                data is None
                or records.flags(head) & COMPRESSED
                or (head[:1] == b"H" and (records.kind(head) not in (b"P", b"J")))
            ):
                # several frames, signed by 2.3, compressed, code-free, or refused
                return self.load(head, [bytes(body)], where)
        try:
            if self.kind == b"J":
                return json.loads(bytes(data))
            if self._unpickler is pickle.Unpickler:
                return pickle.loads(data)  # the C fast path, for every normal read
            return self._unpickler(ChunkReader([data])).load()
        except Exception as exc:
            raise DeserializationError(f"stored value cannot be read back: {exc}") from exc


#: Writes a record's body to a file-like object; returns its head (inline form).
Fill = Callable[[Writable], bytes]


def kind_name(head: bytes) -> str:
    """The serializer that reads the record whose head is ``head``.

    :raises DeserializationError: not a kind of this library.
    """
    name = _NAMES.get(records.kind(head))
    if name is None:
        raise DeserializationError(f"stored record has unknown tag {bytes(head[:1])!r}; damaged")
    return name


def serialized_start(start: bytes) -> bytes:
    """The first serialized bytes of a value, from the start of its record (its head, then
    its body: :meth:`~.backends.base.Maintenance.head`), past any signing header; not
    checked, so only for naming what the bytes are, never for loading them."""
    data = start[records.body_start(start) :]
    return data[LEGACY_HEADER_SIZE:] if data.startswith(LEGACY_MAGIC) else data


def copy_pieces(head: bytes, pieces: Iterable[bytes]) -> Fill:
    """The :data:`Fill` of a record stored elsewhere: its head, and its body piece by piece."""

    def fill(out: Writable) -> bytes:
        for piece in pieces:
            out.write(piece)
        return records.inline(head)

    return fill
