"""How values become bytes and back, the same way for every backend.

A :class:`Codec` writes a value as the body of a record and returns the
record's head (its tag, and a header if it is signed, checksummed or compressed:
see :mod:`.records`); it reads a value back from a head and a body.

Values are written as a stream, into chunks or a side file (:mod:`.streams`), so that
no engine's size limit for one blob applies.
"""

from __future__ import annotations

import itertools
import json
import math
import pickle
import pickletools
from collections.abc import Callable, Iterable
from typing import IO, Any, cast

from . import checksums, dataformats, records
from .checksums import ChecksumWriter
from .compression import DEFAULT_LEVEL, Compressor, Decompressed
from .exceptions import DashDatabaseError, DeserializationError, SerializationError
from .keys import Where
from .records import CHECKSUMMED, COMPRESSED, SIGNED
from .signing import LEGACY_HEADER_SIZE, LEGACY_MAGIC, Signer, refuse_signed
from .streams import CHUNK_SIZE, ChunkReader, Readable, Seekable, Writable

#: Each serializer, and the kinds of record it writes and reads (see :mod:`.records`).
KINDS = {"pickle": (b"P",), "json": (b"J",), "data": dataformats.KINDS}
SERIALIZERS = tuple(KINDS)
# The serializer a kind names, for reading: JSON is read as JSON whoever wrote it.
_NAMES = {kind: name for name in ("data", "json", "pickle") for kind in KINDS[name]}
_JSON_SCALARS = (str, int, float, bool, type(None))


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
    :param checksum: unsigned values written carry a checksum (:mod:`.checksums`);
        ``False`` writes unsigned pickle and JSON values in the 2.x layout. Either way
        it reads both.
    :raises ValueError: ``name`` is not a known serializer.
    """

    def __init__(
        self,
        name: str,
        plain_only: bool = False,
        signer: Signer | None = None,
        compress: str | None = None,
        level: int | None = None,
        checksum: bool = True,
    ) -> None:
        if name not in SERIALIZERS:
            raise ValueError(f"serializer must be one of {SERIALIZERS}, not {name!r}")
        self.name = name
        self._unpickler = PlainUnpickler if plain_only else pickle.Unpickler
        self.signer = signer
        self.compress, self.level = compress, level
        self.checksum = checksum
        #: The kinds of record this codec reads; pickle's and JSON's one is also their 2.x tag.
        self.kinds = KINDS[name]
        self.kind = self.kinds[0] if name != "data" else None
        # How the small values this codec writes without a key start, but for their checksum.
        self._checked = b""
        if self.kind is not None and signer is None:
            self._checked = records.fixed_part(CHECKSUMMED, self.kind)

    def plain(self) -> Codec:
        """This codec, loading plain data only (see ``plain_only``)."""
        return Codec(self.name, True, self.signer, self.compress, self.level, self.checksum)

    def dump(self, value: Any, out: Writable, where: Where) -> bytes:
        """Write the body of ``value``'s record (serialized, maybe compressed, and with a
        signer, signed) to ``out``; return the record's head, in its inline form.

        :raises SerializationError: the value cannot be serialized; errors raised
            by ``out`` itself (a storage error) pass through unchanged.
        """
        kind = self.kind or dataformats.kind_of(value)
        signing = None if self.signer is None else self.signer.start(out, kind)
        # A signature covers the bytes already; the checksum is of the body as stored,
        # so it sits next to ``out``, after compression.
        checksum = ChecksumWriter(out) if self.checksum and signing is None else None
        target: Writable = signing or checksum or out
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
        if checksum is not None:
            flags, fields = flags | CHECKSUMMED, checksum.finish() + fields
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

    def _unsigned(self, head: bytes, pieces: Iterable[bytes], where: Where) -> Readable:
        """The serialized bytes of a record read without a key (a signed one is refused),
        checked against its checksum if it has one, its pieces passed on as they come."""
        self.check_kind(head)
        pieces = iter(pieces)
        first = next(pieces, b"")
        refuse_signed(head, bytes(first[: len(LEGACY_MAGIC)]), where)
        pieces = itertools.chain([first], pieces)
        if records.flags(head) & CHECKSUMMED:
            pieces = checksums.verified(pieces, records.fields(head, CHECKSUMMED), where)
        return ChunkReader(pieces)

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
            _read_to_end(head, stream)
            user_id, key_name = where
            raise DeserializationError(
                f"the stored value of key_name={key_name!r} of user_id={user_id!r} is not a "
                f"whole pickle ({exc}): it is damaged, or was cut short"
            ) from exc
        _read_to_end(head, stream)

    def _serialized(self, head: bytes, chunks: Iterable[bytes], where: Where) -> Readable:
        """The serialized bytes of the record whose head is ``head`` and body ``chunks``,
        checked as they are read (see :meth:`load`)."""
        if self.signer is not None:
            return self._signed(head, ChunkReader(chunks), where)
        return self._unsigned(head, chunks, where)

    def load_file(self, head: bytes, file: Seekable, where: Where) -> Any:
        """Rebuild a value from its record's head and its body, read from ``file``.

        :raises DeserializationError: as :meth:`load`.
        """
        if self.signer is not None:
            return self._decode(head, self._signed(head, file, where), where)
        self.check_kind(head)
        if records.flags(head) & CHECKSUMMED:
            # A file can be read twice, so its damage is found before a byte is decoded.
            checksums.check_file(file, records.fields(head, CHECKSUMMED), where)
            file.seek(0)
        refuse_signed(head, file.read(len(LEGACY_MAGIC)), where)
        file.seek(0)  # and the unpickler reads the file itself: no copy in between
        return self._decode(head, file, where)

    def _decode(self, head: bytes, file: Readable, where: Where) -> Any:
        """The value of the serialized bytes in ``file``, of the record whose head is ``head``
        (``where``'s)."""
        stored, compressed = file, records.fields(head, COMPRESSED)
        if compressed:
            file = Decompressed(file, compressed)
        kind = records.kind(head)
        try:
            if kind == b"P":
                value = self._unpickler(file).load()
            elif kind == b"J":
                value = json.loads(file.read())
            else:
                value = dataformats.load(kind, file)
        except DashDatabaseError:
            raise  # the backend failed to deliver a chunk, or a signature: its own error
        except Exception as exc:
            _read_to_end(head, stored)  # damage is named as such where a checksum can tell
            raise _unreadable(exc, where) from exc
        _read_to_end(head, stored)
        return value

    def load_record(self, record: bytes, where: Where) -> Any:
        """Rebuild a value stored complete in one record (head included).

        :raises DeserializationError: as :meth:`load`.
        """
        data: Any
        # Two paths for every small unsigned read: with a checksum, and in the 2.x layout.
        # A small record's bytes are copied (faster than a view); a large one's never.
        if self._checked and record[: len(self._checked)] == self._checked:
            start = len(self._checked) + checksums.SIZE
            data = record[start:] if len(record) < 4096 else memoryview(record)[start:]
            checksums.check(data, record[len(self._checked) : start], where)
            kind = self._checked[-1:]
        elif record[:1] == self.kind and self.signer is None:
            kind, data = self.kind, record[1:] if len(record) < 4096 else memoryview(record)[1:]
            if data[:1] == LEGACY_MAGIC[:1]:  # no serializer's output starts with a NUL
                refuse_signed(record[:1], bytes(data[: len(LEGACY_MAGIC)]), where)
        else:
            start = records.body_start(record)
            head, body = bytes(record[:start]), memoryview(record)[start:]
            self.check_kind(head)
            kind = records.kind(head)
            # Code-free formats, several frames, signed by 2.3, compressed, or refused:
            # read as a stream, whose checks are the only ones made.
            data = self._one_piece(head, body, where) if kind in (b"P", b"J") else None
            if data is None:
                return self.load(head, [bytes(body)], where)
            if len(data) < 4096:
                data = bytes(data)
        try:
            if kind == b"J":
                return json.loads(bytes(data))
            if self._unpickler is pickle.Unpickler:
                return pickle.loads(data)  # the C fast path, for every normal read
            return self._unpickler(ChunkReader([data])).load()
        except Exception as exc:
            raise _unreadable(exc, where) from exc

    def _one_piece(self, head: bytes, body: memoryview, where: Where) -> memoryview | None:
        """The checked serialized bytes of a record whose body is ``body``, if they are
        there as they are (one signed frame, or checksummed, uncompressed); ``None``
        where :meth:`load` must read them.

        :raises DeserializationError: altered (signed), or damaged (checksummed).
        """
        flags = records.flags(head)
        if flags & COMPRESSED:
            return None
        if self.signer is not None:
            return self.signer.one_frame(head, body, where) if flags & SIGNED else None
        if flags == CHECKSUMMED:
            checksums.check(body, records.fields(head, CHECKSUMMED), where)
            return body
        return None


def _unreadable(exc: Exception, where: Where) -> DeserializationError:
    user_id, key_name = where
    return DeserializationError(
        f"the stored value of key_name={key_name!r} of user_id={user_id!r} cannot be "
        f"read back ({exc}): it is damaged, or was cut short"
    )


def _read_to_end(head: bytes, stored: Readable) -> None:
    # A decoder may stop before the last stored byte (a pickle's STOP, a zstd frame's
    # end), and the checksum is checked as the last byte arrives.
    if records.flags(head) & CHECKSUMMED:
        while stored.read(CHUNK_SIZE):
            pass


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
