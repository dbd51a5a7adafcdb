"""A SQLite file's counters: built once for an older file, read, and checked against quotas.

Triggers (see :mod:`.schema`) keep each user's values and bytes, and the
store's, in the statement that writes. A write under quotas reads them in the
``BEGIN IMMEDIATE`` transaction that writes, which no other process can
enter, so N racing writers are checked one after another.
"""

from __future__ import annotations

import json
import logging

from ...activity import Touch
from ...keys import Key, encode_key
from ...quotas import Quotas, Usage
from ...records import stored_size
from . import schema as sql
from . import user_changes
from .connection import Connection
from .side_files import SideFiles

logger = logging.getLogger("dash_database")

#: Records filled in per statement while building counters; progress is logged per batch.
BATCH = 10_000


def _record_user(key: str) -> str | None:
    """The user column of a record key, or ``None`` if this library could not have made it."""
    try:
        user, key_name = json.loads(key)
    except (ValueError, TypeError):
        return None
    valid = all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in (user, key_name))
    return encode_key(user) if valid else None


def _fill_columns(conn: Connection, files: SideFiles) -> None:
    """Give every record of an older file its user and stored size."""
    rows = conn.run(sql.SIZES)
    if len(rows) > BATCH:
        logger.info("%s: building counters for %d values, once", conn.path, len(rows))
    for start in range(0, len(rows), BATCH):
        filled = []
        for key, length, name, _ in rows[start : start + BATCH]:  # its size is not set yet
            size = length
            if name is not None:
                file_size = files.size(name)
                size = length if file_size is None else stored_size(length - len(name), file_size)
            filled.append((_record_user(key), size, key))
        conn.many(f'UPDATE "{sql.VALUES}" SET user = ?, size = ? WHERE key = ?', filled)
        if len(rows) > BATCH:
            logger.info("%s: counted %d of %d values", conn.path, start + len(filled), len(rows))


def upgrade(conn: Connection, files: SideFiles) -> None:
    """Make sure the file has this version's counters: a file made before them gets them
    now, once; a file of version 2 gets this version's triggers.

    The whole upgrade is one transaction: other processes wait for it, and
    none sees a half-built counter.
    """
    if conn.run("PRAGMA user_version")[0][0] >= sql.VERSION:
        return
    with conn.writing(), conn.transaction():
        version = conn.run("PRAGMA user_version")[0][0]
        if version >= sql.VERSION:
            return  # another process upgraded it while we waited
        for statement in sql.SCHEMA:
            conn.run(statement)
        present = {row[1] for row in conn.run(f'PRAGMA table_info("{sql.VALUES}")')}
        for name, kind in sql.COLUMNS:
            if name not in present:
                conn.run(f'ALTER TABLE "{sql.VALUES}" ADD COLUMN {name} {kind}')
        for trigger in (*sql.OLD_TRIGGERS, *(t.split('"')[1] for t in sql.TRIGGERS)):
            conn.run(f'DROP TRIGGER IF EXISTS "{trigger}"')
        if version < sql.COUNTED:
            _fill_columns(conn, files)  # before the triggers: they would count the fill
        for statement in sql.TRIGGERS:
            conn.run(statement)
        if version < sql.COUNTED:
            recount(conn)
        conn.run(f"PRAGMA user_version = {sql.VERSION}")


def recount(conn: Connection) -> None:
    """Rebuild every counter from the records; inside a transaction."""
    conn.run(f'DELETE FROM "{sql.USERS}"')
    conn.run(
        f'INSERT INTO "{sql.USERS}" SELECT user, count(*), sum(size) FROM "{sql.VALUES}" '
        "WHERE user IS NOT NULL GROUP BY user"
    )
    conn.run(f"{sql.KEEP_TOTALS} WHERE bytes IS NOT NULL")


def check(conn: Connection, quotas: Quotas, user_id: Key, key_name: Key, size: int) -> None:
    """Check a write of ``size`` bytes against ``quotas`` by the counters; inside a transaction.

    The first write of a file under ``max_total_bytes`` fills in the store's totals, from
    every user's counter, and from then on every writer keeps them (see :data:`.schema.SCHEMA`).

    :raises ~dash_database.exceptions.QuotaExceededError: it would pass a limit.
    """
    rows = conn.run(sql.USER_COUNT, (encode_key(user_id),))
    keys, stored = (rows[0][1], rows[0][2]) if rows else (0, 0)
    old = conn.run(sql.OLD_SIZE, (sql.record_key(user_id, key_name),))
    total = 0
    if quotas.max_total_bytes is not None:
        total = conn.run(sql.TOTAL_BYTES)[0][0]
        if total is None:
            logger.info("%s: keeping the store's total bytes from now on", conn.path)
            conn.run(sql.KEEP_TOTALS)
            total = conn.run(sql.TOTAL_BYTES)[0][0]
    quotas.check(user_id, key_name, size, Usage(keys, stored, total, old[0][0] if old else None))


def put(
    conn: Connection,
    quotas: Quotas | None,
    user_id: Key,
    key_name: Key,
    record: bytes,
    size: int,
    touch: Touch | None = None,
) -> None:
    """Write one record of ``size`` stored bytes, checked against ``quotas``; inside
    :meth:`~.connection.Connection.writing`.

    :param touch: a write's activity (see :class:`~dash_database.activity.Touch`),
        applied in the same commit.
    """
    member = encode_key(user_id)
    row = (f"[{member},{encode_key(key_name)}]", record, member, size)
    if quotas is None and (touch is None or touch.drop_before is None):
        # One statement: atomic without a transaction. A write's touch always stores
        # its time, never moving the stored one back (Touch.outcome): the view's upsert.
        if touch is None:
            conn.change(sql.PUT, row)
        else:
            conn.change(sql.PUT_SEEN, (*row, touch.now))
        return
    with conn.transaction():
        if touch is not None:
            user_changes.touch(conn, user_id, touch)
        if quotas is not None:
            check(conn, quotas, user_id, key_name, size)
        conn.change(sql.PUT, row)
