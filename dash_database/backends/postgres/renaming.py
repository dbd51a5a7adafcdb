# Written by tools/unasync.py from async_renaming.py: edit that file, then run the script.
"""Renaming a user on PostgreSQL: one transaction that moves rows, counters and activity.

A signed record is bound to its user (see :meth:`~dash_database.serialization.Codec.rebind`),
so its head is rewritten for the new id; its body, and a large value's chunk rows, stay
where they are: nothing is read or copied but the heads.
"""

from __future__ import annotations

from ...exceptions import UserExistsError
from ...keys import Key, decode_key
from ...serialization import Codec
from .schema import Statements, ref
from .server import Transaction


def rename(txn: Transaction, sql: Statements, codec: Codec, ids: tuple[Key, Key]) -> int:
    """Move ``ids[0]``'s rows, counters and activity to ``ids[1]`` inside ``txn``; how many
    values moved.

    :raises UserExistsError: the new id has values; nothing changed.
    """
    old_id, new_id = ids
    old, new = ref(old_id), ref(new_id)
    # Both counter rows first, in one order: a writer of either user waits for the rename,
    # and two renames never wait for each other.
    counts = {}
    for r in sorted({old, new}):
        counts[r] = (txn.run(sql.lock_count, tuple(r)))[0][0]
    if old != new and counts[new]:
        raise UserExistsError(
            f"user_id={new_id!r} already has values; nothing was moved or changed"
        )
    for kid, key_text, start in txn.run(sql.heads, tuple(old)):
        key_name = decode_key(key_text)
        rebound = codec.rebind(bytes(start), (old_id, key_name), (new_id, key_name))
        if rebound is not None:
            txn.run(sql.rehead, (rebound[1], rebound[0] + 1, old.digest, kid))
    for r in (old, new):
        txn.run(sql.forget_empty, (r.digest,))
    moved = int((txn.run(sql.move_values, (*new, *old)))[0][0])
    txn.run(sql.move_count, (*new, *old))
    if old != new:
        txn.run(sql.forget_seen, (new.digest,))
        txn.run(sql.move_seen, (*new, *old))
    return moved
