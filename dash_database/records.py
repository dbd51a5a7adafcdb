"""Records: what an engine stores for one value, and their one versioned header.

A record is a tag byte, then a header if the tag says so, then its body::

    tag (1) | header (tags H and h only) | body

* ``P`` / ``J``: a pickle / JSON value, its serialized bytes inline (every 2.x store);
* ``p`` / ``j``: the same, its bytes elsewhere; the body says where: a side-file name
  (SQLite) or ``{version}:{count}`` (Redis chunks);
* ``H`` / ``h``: a header, then the value's bytes inline / where they are.

The header (version 1)::

    version (1) | length (1: the header's bytes, these two included) | flags (1) | kind (1)
    | the fields of each flag that is set, in the order of the flags

``kind`` names the format of the serialized bytes: ``P`` (pickle) and ``J`` (JSON), as
2.x tags did, and the code-free serializer's ``B``, ``T``, ``A`` and ``N``
(:mod:`.dataformats`). The flags:

* :data:`SIGNED`: the body is signed frames; fields: key fingerprint (4), record id
  (16), binding (32). See :mod:`.signing`.
* :data:`COMPRESSED`: the serialized bytes are compressed (before any signing); fields:
  the algorithm (1: zstd) and the serialized bytes' length (8), which reading never
  passes. See :mod:`.compression`.
* :data:`CHECKSUMMED`: the body is unsigned, and its CRC-32 as stored follows (4). See
  :mod:`.checksums`.

A record with a flag this version does not know was written by a newer one, and is
refused, never misread. Only a record that needs a header carries one: an unsigned,
uncompressed pickle or JSON value written with ``checksum=False`` keeps the 2.x layout,
which every 2.x version reads. The rules "does the body
continue elsewhere" and "where does the body start" live here, and so do their SQL and Lua forms
(:func:`sql_reference`, :func:`lua_body_start`), generated from them.
"""

from __future__ import annotations

from . import checksums
from .exceptions import DeserializationError

#: The tags of records whose body says where the value's bytes are.
CHUNKED_TAGS = (b"p", b"j", b"h")
#: The tags of records with a header.
HEADER_TAGS = (b"H", b"h")

VERSION = 1
#: The fixed part of a header: version, length, flags, kind.
FIXED = 4
SIGNED = 1
CHECKSUMMED = 2
COMPRESSED = 4
#: The flags this version reads, and the bytes of each one's fields, in the order they come.
FIELD_SIZES = {SIGNED: 4 + 16 + 32, CHECKSUMMED: checksums.SIZE, COMPRESSED: 1 + 8}
KNOWN_FLAGS = sum(FIELD_SIZES)


def is_chunked(record: bytes | memoryview) -> bool:
    """Whether the value of ``record`` continues elsewhere (in chunks or a side file)."""
    return bytes(record[:1]) in CHUNKED_TAGS


def has_header(record: bytes | memoryview) -> bool:
    """Whether ``record`` starts with a tag that a header follows."""
    return bytes(record[:1]) in HEADER_TAGS


def stored_size(head_bytes: int, body_bytes: int) -> int:
    """The bytes a value takes in a store, which quotas and counters count: its record's head
    and its body, wherever the body is (inline, a side file, Redis chunks). The Lua form is
    ``stored_size`` in ``backends/redis/scripts.py``; one table of cases checks both."""
    return head_bytes + body_bytes


def make_header(flags: int, kind: bytes, fields: bytes) -> bytes:
    """A header of this version; ``fields`` are those of ``flags``, in order."""
    return bytes((VERSION, FIXED + len(fields), flags)) + kind + fields


def fixed_part(flags: int, kind: bytes) -> bytes:
    """The start of an inline record's head with ``flags`` and ``kind``: all but the fields,
    which follow it."""
    length = FIXED + sum(size for flag, size in FIELD_SIZES.items() if flags & flag)
    return b"H" + bytes((VERSION, length, flags)) + kind


def body_start(record: bytes | memoryview) -> int:
    """Where the body of ``record`` starts: after its tag and header.

    :raises DeserializationError: the header is damaged, or of a newer version.
    """
    if not has_header(record):
        return 1
    if len(record) < 1 + FIXED or record[1] != VERSION:
        version = record[1] if len(record) > 1 else None
        raise DeserializationError(
            f"stored record has a header of version {version!r}, which this version of "
            "dash_database does not read: it was written by a newer version, or is damaged"
        )
    length, flags = record[2], record[3]
    if flags & ~KNOWN_FLAGS or length != FIXED + sum(
        size for flag, size in FIELD_SIZES.items() if flags & flag
    ):
        raise DeserializationError(
            f"stored record has header flags {flags:#04x} and length {length}, which this "
            "version of dash_database does not read: it was written by a newer version, or "
            "is damaged"
        )
    if len(record) < 1 + length:
        raise DeserializationError("stored record is shorter than its header; it is damaged")
    return 1 + length


def split(record: bytes) -> tuple[bytes, bytes]:
    """``record``'s head, in its inline form (see :func:`inline`), and its body: the value's
    bytes, or where they are.

    :raises DeserializationError: as :func:`body_start`.
    """
    start = body_start(record)
    return inline(bytes(record[:start])), bytes(record[start:])


def kind(head: bytes) -> bytes:
    """The serializer kind (``P`` or ``J``) of a record that starts with ``head``."""
    return bytes(head[4:5]) if has_header(head) else bytes(head[:1]).upper()


def flags(head: bytes) -> int:
    """The header flags of a record that starts with ``head`` (0 without a header)."""
    return head[3] if has_header(head) and len(head) > 3 else 0


def fields(head: bytes, flag: int) -> bytes:
    """The fields of ``flag`` in a checked head (see :func:`body_start`); empty if unset."""
    if not flags(head) & flag:
        return b""
    before = (size for other, size in FIELD_SIZES.items() if other < flag and flags(head) & other)
    start = 1 + FIXED + sum(before)
    return head[start : start + FIELD_SIZES[flag]]


def continued(head: bytes) -> bytes:
    """The head of a record whose body names where the bytes are, from an inline one's."""
    return head[:1].lower() + head[1:]


def inline(head: bytes) -> bytes:
    """The head of a record that holds its bytes, from either one's."""
    return head[:1].upper() + head[1:]


def _sql_byte(column: str, position: int) -> str:
    # SQLite has no function from a blob's byte to its number: read it in hex.
    digits = "'0123456789ABCDEF'"
    text = f"hex(substr({column}, {position}, 1))"
    high, low = (f"instr({digits}, substr({text}, {n}, 1))" for n in (1, 2))
    return f"({high} * 16 + {low} - 17)"


def sql_is_chunked(column: str) -> str:
    """The SQL condition "the record in ``column`` continues elsewhere"."""
    tags = ", ".join(f"x'{tag.hex()}'" for tag in CHUNKED_TAGS)
    return f"(length({column}) > 1 AND substr({column}, 1, 1) IN ({tags}))"


def sql_reference(column: str) -> str:
    """The SQL expression "what the record in ``column`` names" (``NULL``: inline)."""
    tags = ", ".join(f"x'{tag.hex()}'" for tag in HEADER_TAGS)
    start = (
        f"CASE WHEN substr({column}, 1, 1) IN ({tags}) THEN 2 + {_sql_byte(column, 3)} ELSE 2 END"
    )
    return f"CASE WHEN {sql_is_chunked(column)} THEN CAST(substr({column}, {start}) AS TEXT) END"


def lua_is_chunked(variable: str) -> str:
    """The Lua condition "the record in ``variable`` continues elsewhere"."""
    return " or ".join(f"string.byte({variable}, 1) == {tag[0]}" for tag in CHUNKED_TAGS)


def lua_body_start(variable: str) -> str:
    """The Lua expression "where the body of the record in ``variable`` starts"."""
    header = " or ".join(f"string.byte({variable}, 1) == {tag[0]}" for tag in HEADER_TAGS)
    return f"(({header}) and 2 + (string.byte({variable}, 3) or 0) or 2)"
