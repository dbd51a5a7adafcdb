"""Changes to a whole user on a SQLite file: delete (if idle, or at once) and rename.

Each is one ``BEGIN IMMEDIATE`` transaction on the writing connection, so
the user's records, counters and activity change together, and a write
racing from another process comes entirely before or entirely after.
"""

from __future__ import annotations

import json

from ...activity import Touch
from ...exceptions import UserExistsError
from ...keys import Key, encode_key
from ...serialization import Codec
from . import schema as sql
from .connection import Connection


def drop(conn: Connection, user_id: Key, cutoff: float | None) -> int:
    """Delete the user's values and activity (with a ``cutoff``: only if it was idle since).

    Inside :meth:`Connection.writing`. Return how many values (with a cutoff:
    whether the user was deleted). The triggers take its counts off.
    """
    with conn.transaction():
        if cutoff is None:
            deleted = conn.change(sql.DELETE_RANGE, sql.user_range(user_id))
            conn.change(sql.FORGET, (encode_key(user_id),))
            return deleted
        # The idle check is inside the transaction, so a write racing from
        # another process either comes first (and saves the user) or finds it gone.
        return drop_if_idle(conn, user_id, cutoff)


def drop_if_idle(conn: Connection, user_id: Key, cutoff: float) -> int:
    """Delete the user's values and activity if it was last active before ``cutoff``;
    inside a transaction. Return whether it was deleted."""
    member = encode_key(user_id)
    conn.change(sql.DELETE_IDLE_RANGE, (*sql.user_range(user_id), member, cutoff))
    return conn.change(sql.FORGET_IDLE, (member, cutoff))


def _rebind(conn: Connection, codec: Codec, old_id: Key, new_id: Key) -> None:
    """Bind each of the user's signed records to ``new_id`` (see
    :meth:`.Codec.rebind`), rewriting their heads only; inside a transaction."""
    for key, start in conn.run(sql.HEADS, sql.user_range(old_id)):
        key_name = json.loads(key)[1]
        rebound = codec.rebind(bytes(start), (old_id, key_name), (new_id, key_name))
        if rebound is not None:
            conn.change(sql.REHEAD, (rebound[1], rebound[0] + 1, key))


def rename(conn: Connection, old_id: Key, new_id: Key, codec: Codec) -> int:
    """Move the user's records, counters and activity to ``new_id``; inside
    :meth:`Connection.writing`. Return how many values moved. Signed records are
    bound to ``new_id`` by ``codec`` (their heads alone are rewritten).

    :raises UserExistsError: ``new_id`` has values; nothing changed.
    """
    old_range, new_range = sql.user_range(old_id), sql.user_range(new_id)
    new_member = encode_key(new_id)
    with conn.transaction():
        if conn.run(sql.COUNT, new_range)[0][0]:
            raise UserExistsError(
                f"user_id={new_id!r} already has values; nothing was moved or changed"
            )
        _rebind(conn, codec, old_id, new_id)
        start = len(old_range[0]) + 1  # the first character after the old prefix
        moved = conn.change(sql.RENAME_RANGE, (new_range[0], start, new_member, *old_range))
        for statement in (sql.FORGET, sql.FORGET_COUNT):
            conn.change(statement, (new_member,))
        for statement in (sql.RENAME_SEEN, sql.RENAME_COUNT):
            conn.change(statement, (new_member, encode_key(old_id)))
    return moved


def touch(conn: Connection, user_id: Key, touch: Touch) -> float | None:
    """Apply ``touch`` (see :meth:`~dash_database.activity.Touch.outcome`) inside a
    transaction: drop the user if idle, then record its activity. Return what is stored."""
    member = encode_key(user_id)
    rows = conn.run(sql.SEEN, (member,))
    seen: float | None = rows[0][0] if rows else None
    drop, store = touch.outcome(seen)
    if drop:
        assert touch.drop_before is not None
        drop_if_idle(conn, user_id, touch.drop_before)
        seen = None
    if store is not None:
        conn.change(sql.MARK, (member, store))  # an upsert that never moves it back
        seen = store
    return seen
