# Written by tools/unasync.py from async_copying.py: edit that file, then run the script.
"""Copying a store to another: from one file to Redis when an app outgrows one host, and back.

Records are copied as stored: nothing is unpickled (signed values are checked
as they stream, see :func:`_verified`), and a large value goes
piece by piece, never whole in memory. Each value is written atomically, so an
interrupted copy leaves whole values behind, and a rerun finishes the job:
values already at the destination and equal are left alone. The source is
only read: no value and no activity of it changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from . import concurrency, records
from .activity import Progress
from .backends.base import Backend, RawValue
from .keys import Key
from .reports import CopyReport
from .serialization import kind_name
from .signing import LEGACY_HEADER_SIZE
from .streams import ChunkReader


def _digest(raw: RawValue) -> tuple[bytes, bytes]:
    """A raw value's head and the SHA-256 of its body, read piece by piece."""
    tag, pieces = raw
    digest = hashlib.sha256()
    for piece in pieces:
        digest.update(piece)
    return tag, digest.digest()


def _verified(source: Backend, user_id: Key, key_name: Key, raw: RawValue) -> RawValue:
    """The raw value, each frame checked as it streams when the source signs its values.

    Signed records are copied as they are: they are bound to the same user and key,
    so the destination reads them with the same ``secret_key``.
    """
    signer, (head, pieces) = source.codec.signer, raw
    if signer is None:
        return raw
    where = (user_id, key_name)

    def checked(body: Iterator[bytes]) -> Iterator[bytes]:
        stream = ChunkReader(body)
        if records.has_header(head):
            context = signer.open_head(head, where)
        else:  # signed by 2.3: its header starts the body
            start = stream.read(LEGACY_HEADER_SIZE)
            context = signer.legacy_context(start, where, kind_name(head))
            yield start
        for piece in signer.frames(stream, context, raw=True):
            yield bytes(piece)

    return head, concurrency.transform(checked, pieces)


def copy_records(
    source: Backend,
    destination: Backend,
    users: Iterable[Key] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy users' records and activity from ``source`` to ``destination`` (see the module).

    :param users: only these ids (default: every user holding a value).
    :param overwrite: replace values that differ at the destination.
    :param progress: called with the running count of users.
    """
    chosen = source.users() if users is None else [u for u in users if source.counts(u)]
    counts = {"copied": 0, "unchanged": 0, "replaced": 0, "kept": 0}
    activity = source.sessions()
    for done, user_id in enumerate(chosen, 1):
        for key_name in (source.keys(user_id, None))[0]:
            existing = destination.read_raw(user_id, key_name)
            if existing is not None:
                raw = source.read_raw(user_id, key_name)
                if raw is None:
                    continue  # deleted at the source meanwhile
                if _digest(raw) == _digest(existing):
                    counts["unchanged"] += 1
                    continue
                if not overwrite:
                    counts["kept"] += 1
                    continue
            # Read again: comparing consumed the stream, and a value is never held whole.
            raw = source.read_raw(user_id, key_name)
            if raw is None:
                continue
            destination.write_raw(user_id, key_name, *_verified(source, user_id, key_name, raw))
            counts["replaced" if existing is not None else "copied"] += 1
        if user_id in activity:
            destination.mark_seen(user_id, activity[user_id], create=True)
        if progress is not None:
            progress(done)
    return CopyReport(users=len(chosen), **counts)
