"""Renaming a user on Redis, with its signed records bound to the new id.

A signed record's binding names its user (see :mod:`dash_database.signing`),
and only this process holds the key, which never goes into a script's
arguments (``SLOWLOG`` and ``MONITOR`` would show it). So the heads of the
user's records are read first (one script) and rebound here; the rename script
gives each record its new head if it still starts with the one read, and
renames the hash, atomically. A write racing the rename may land in between,
bound to the old id: a second pass over the renamed hash rebinds those, before
the rename returns and the new id can be handed to anyone. A write racing it
to the old id after that goes to the old id, as any later write would.
"""

from __future__ import annotations

from ...exceptions import StorageError, UserExistsError
from ...keys import Key, decode_key, encode_key
from ...serialization import Codec
from . import scripts
from .async_chunks import AsyncChunks
from .async_server import AsyncServer
from .layout import Layout
from .scripts import NEED_CHUNKS
from .wire import Script

#: What the rename script returns when the new id has values.
TAKEN = -1
_HEADS = Script.of(scripts.HEADS)
_RENAME = Script.of(scripts.RENAME_USER)
_REHEAD = Script.of(scripts.REHEAD)


def rebinds(flat: list[bytes], codec: Codec, old_id: Key, new_id: Key) -> list[bytes]:
    """Field, old head, new head of each record still bound to ``old_id``, from the heads
    script's answer (field, start, field, start...)."""
    found: list[bytes] = []
    for field, start in zip(flat[::2], flat[1::2], strict=True):
        key_name = decode_key(field)
        rebound = codec.rebind(bytes(start), (old_id, key_name), (new_id, key_name))
        if rebound is not None:
            found += [field, start[: rebound[0]], rebound[1]]
    return found


async def rename(
    server: AsyncServer, layout: Layout, chunks: AsyncChunks, codec: Codec, ids: tuple[Key, Key]
) -> int:
    """Rename a user (``ids``: old and new); return how many values moved.

    :raises UserExistsError: the new id has values; nothing changed.
    """
    old_id, new_id = ids
    old, new = encode_key(old_id), encode_key(new_id)
    keys = [*layout.user_keys(old), *layout.user_keys(new)]
    found = rebinds(await server.run(_HEADS, keys[:1], []), codec, old_id, new_id)
    old_base, new_base = layout.base(old), layout.base(new)
    old_chunks: list[str] = []
    for _ in range(2):  # the second time with the chunks the first answer asked for
        new_chunks = [new_base + key[len(old_base) :] for key in old_chunks]
        args = [old, new, len(old_chunks), *found]
        moved = await server.run(_RENAME, [*keys, *old_chunks, *new_chunks], args)
        if moved != NEED_CHUNKS:
            break
        old_chunks = await chunks.declared(keys[0], lambda v, n: f"{old_base}chunk:{v}:{n}")
    if moved == NEED_CHUNKS:
        raise StorageError(
            f"user_id={old_id!r} kept changing while it was renamed; nothing was moved. Retry"
        )
    if moved == TAKEN:
        raise UserExistsError(
            f"user_id={new_id!r} already has values; nothing was moved or changed"
        )
    if codec.signer is not None:
        # Records written to the old id between the two scripts are bound to it.
        late = rebinds(await server.run(_HEADS, keys[3:4], []), codec, old_id, new_id)
        if late:
            await server.run(_REHEAD, keys[3:4], late)
    return int(moved)
