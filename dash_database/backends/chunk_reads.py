"""What engines that keep a large value's body in chunks share: the URL shown for a server,
and the rule for a chunk found gone while its value was read.

Chunks are never rewritten (each value written gets new ones), so a chunk gone
midway through a read means that the value was replaced or deleted meanwhile,
and reading it again finds the new one; unless the same record names it again.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from ..exceptions import DashDatabaseError, DeserializationError
from ..keys import Where

#: The most chunks one value may have: 512 GiB at the default chunk size, more than a
#: Redis server holds, and a loop a server script runs in milliseconds.
MAX_CHUNKS = 65_536
# A chunked record's body, as written by reference(): its chunks' version and count.
_REFERENCE = re.compile(rb"([0-9a-f]{32}):([0-9]{1,6})")


def reference(version: str, count: int) -> bytes:
    """The body of a chunked record: the version (32 hex digits) and count of its chunks."""
    return f"{version}:{count}".encode()


def parse_reference(body: bytes) -> tuple[str, int] | None:
    """The version and count that a chunked record's body names; ``None`` if this library
    cannot have written it (read back, it is untrusted)."""
    match = _REFERENCE.fullmatch(body)
    if match is None or not 1 <= int(match[2]) <= MAX_CHUNKS:
        return None
    return match[1].decode(), int(match[2])


class ChunkVanished(DashDatabaseError):
    """A concurrent write replaced the value while we read its chunks."""


def check_replaced(record: bytes, previous: bytes | None, where: Where) -> None:
    """After a chunk of ``record`` was found gone: nothing, if the record was replaced since
    it was last read (``previous``), so that reading it again finds the new value.

    :raises DeserializationError: it was not: its chunk is gone for good (evicted, or
        deleted by hand), and the value cannot be read.
    """
    if record == previous:
        user_id, key_name = where
        raise DeserializationError(
            f"key_name={key_name!r} of user_id={user_id!r}: a chunk of its data is gone from "
            "the server (evicted by maxmemory-policy, or deleted by hand); the value cannot "
            "be read. Delete it, or run repair"
        )


def redact(url: str) -> str:
    """``url`` without its password, for messages and ``repr``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))
