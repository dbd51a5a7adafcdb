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

from . import async_concurrency, records
from .activity import Progress
from .backends.async_base import AsyncBackend, AsyncRawValue
from .keys import Key
from .reports import CopyReport
from .serialization import kind_name
from .signing import LEGACY_HEADER_SIZE
from .streams import ChunkReader


async def _digest(raw: AsyncRawValue) -> tuple[bytes, bytes]:
    """A raw value's head and the SHA-256 of its body, read piece by piece."""
    tag, pieces = raw
    digest = hashlib.sha256()
    async for piece in pieces:
        digest.update(piece)
    return tag, digest.digest()


def _verified(
    source: AsyncBackend, user_id: Key, key_name: Key, raw: AsyncRawValue
) -> AsyncRawValue:
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

    return head, async_concurrency.transform(checked, pieces)


async def copy_records(
    source: AsyncBackend,
    destination: AsyncBackend,
    users: Iterable[Key] | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy users' records and activity from ``source`` to ``destination`` (see the module).

    :param users: only these ids (default: every user holding a value).
    :param overwrite: replace values that differ at the destination.
    :param progress: called with the running count of users.
    """
    chosen = await source.users() if users is None else [u for u in users if await source.counts(u)]
    counts = {"copied": 0, "unchanged": 0, "replaced": 0, "kept": 0}
    activity = await source.sessions()
    for done, user_id in enumerate(chosen, 1):
        for key_name in (await source.keys(user_id, None))[0]:
            existing = await destination.read_raw(user_id, key_name)
            if existing is not None:
                raw = await source.read_raw(user_id, key_name)
                if raw is None:
                    continue  # deleted at the source meanwhile
                if await _digest(raw) == await _digest(existing):
                    counts["unchanged"] += 1
                    continue
                if not overwrite:
                    counts["kept"] += 1
                    continue
            # Read again: comparing consumed the stream, and a value is never held whole.
            raw = await source.read_raw(user_id, key_name)
            if raw is None:
                continue
            await destination.write_raw(
                user_id, key_name, *_verified(source, user_id, key_name, raw)
            )
            counts["replaced" if existing is not None else "copied"] += 1
        if user_id in activity:
            await destination.mark_seen(user_id, activity[user_id], create=True)
        if progress is not None:
            progress(done)
    return CopyReport(users=len(chosen), **counts)
