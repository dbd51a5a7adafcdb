# Written by tools/unasync.py from async_writing.py: edit that file, then run the script.
"""How a value is written on PostgreSQL: one statement when nothing needs checking, else one
transaction that applies the user's activity and checks the quotas first.

A write without quotas, whose activity (if any) is the upsert of its time, is a single
statement, committed alone in one round trip; its counters change in the same statement
(the trigger of :mod:`.schema`). Quotas, or an idle user to drop first, need a
transaction: it takes the user's counter row before checking, so racing writers are
checked one after another. A large value's transaction is begun by its first chunk.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

from ... import concurrency
from ...activity import Touch
from ...exceptions import StorageError
from ...keys import Where
from ...quotas import Quotas, Usage
from ...records import inline
from ...serialization import Codec, Fill
from ...streams import ChunkWriter
from .chunks import Pending, Written
from .schema import Ref, Statements, ref
from .server import Server, Transaction

logger = logging.getLogger("dash_database")


def dumping(codec: Codec, value: Any, where: Where) -> Fill:
    """What serializes ``value`` of ``where`` with ``codec``."""
    return lambda out: codec.dump(value, out, where)


def one_statement(touch: Touch | None) -> bool:
    """Whether a write's ``touch`` is an upsert of its time (see ``Touch.outcome``): a write
    that drops no idle user records ``max(seen, now)``."""
    return touch is None or (
        touch.drop_before is None and touch.create and math.isinf(touch.refresh_before)
    )


class Writing:
    """Writes values to one store.

    :param server: its database.
    :param sql: its statements.
    :param quotas: the limits each write checks inside its transaction; ``None``: none.
    :param location: the store's name, for messages.
    """

    def __init__(
        self, server: Server, sql: Statements, quotas: Quotas | None, location: str
    ) -> None:
        self._server, self._sql, self.quotas, self.location = server, sql, quotas, location

    def touch_in(self, txn: Transaction, user: Ref, touch: Touch) -> float | None:
        """Apply ``touch`` inside ``txn``: drop the user if idle, then record its activity."""
        rows = txn.run(self._sql.lock_seen, tuple(user))
        seen: float | None = rows[0][0] if rows else None
        drop, store = touch.outcome(seen)
        if drop:
            assert touch.drop_before is not None
            txn.run(self._sql.delete_idle, (*user, touch.drop_before, *user))
            seen = None
        if store is not None:
            txn.run(self._sql.mark, (*user, store))
            seen = store
        return seen

    def _check(self, txn: Transaction, where: Where, size: int) -> None:
        """Check a write of ``size`` bytes against the quotas, with the user's counter row
        (and the store's, under ``max_total_bytes``) taken for the rest of ``txn``.

        :raises QuotaExceededError: it would pass a limit.
        """
        assert self.quotas is not None
        user, key = ref(where[0]), ref(where[1])
        keys, stored = (txn.run(self._sql.lock_count, tuple(user)))[0]
        old = txn.run(self._sql.size, (*user, *key))
        total = 0
        if self.quotas.max_total_bytes is not None:
            total = (txn.run(self._sql.total))[0][0]
            if total is None:
                logger.info("%s: keeping the store's total bytes from now on", self.location)
                for statement in self._sql.keep_totals:
                    txn.run(statement)
                total = (txn.run(self._sql.total))[0][0]
        self.quotas.check(*where, size, Usage(keys, stored, total, old[0][0] if old else None))

    def _commit(
        self,
        txn: Transaction,
        where: Where,
        written: Written,
        touch: Touch | None,
        expect: tuple[bytes | None] | None = None,
    ) -> bool:
        """Write ``written``'s row, with ``touch``, under the quotas: one statement when
        nothing needs checking, else in ``txn``. Return whether it was written: with
        ``expect``, only if the key's record is still ``expect[0]`` (``None``: absent).

        :raises QuotaExceededError: it would pass a limit; nothing changed.
        """
        user, key = ref(where[0]), ref(where[1])
        row = (*user, *key, *written)
        # One statement, committed alone, unless quotas or an idle user's drop need a
        # transaction (a large value's is begun already: its chunks are in it).
        alone = self.quotas is None and one_statement(touch) and (touch is None or expect is None)
        if not alone:
            if touch is not None:
                self.touch_in(txn, user, touch)
            if self.quotas is not None:
                self._check(txn, where, written.size)
        run = txn.alone if alone else txn.run
        if alone and touch is not None:
            done = run(self._sql.put_seen, (*user, touch.now, *row))
        elif expect is None:
            done = run(self._sql.put, row)
        elif expect[0] is None:
            done = run(self._sql.insert_new, row)
        else:
            done = run(self._sql.replace, (*written, *user, *key, expect[0]))
        if done[0][0] == 1:
            return True
        if expect is None:
            raise StorageError(
                f"{self.location}: key_name={where[1]!r} of user_id={where[0]!r} shares its "
                "row digests with another user's value; nothing was stored. Use another key name"
            )
        txn.rollback()  # lost the race: nothing of this try stays
        return False

    def write(
        self,
        where: Where,
        fill: Fill,
        touch: Touch | None,
        chunk_size: int,
        expect: tuple[bytes | None] | None = None,
    ) -> bool:
        """Serialize with ``fill`` and commit the value (see :meth:`_commit`); a large value's
        chunks (of ``chunk_size`` bytes) are inserted as they fill, in the transaction that
        writes its row."""
        with self._server.transaction() as txn:
            chunks = Pending(txn, self._sql.chunk)
            head, tail = concurrency.fill(fill, chunks.put, chunk_size)
            return self._commit(txn, where, chunks.finish(head, tail), touch, expect)

    def write_raw(
        self, where: Where, head: bytes, pieces: Iterable[bytes], chunk_size: int
    ) -> None:
        """Store a record read elsewhere, as :meth:`set` stores a value (its body copied,
        never decoded, each chunk inserted as soon as it fills)."""
        with self._server.transaction() as txn:
            chunks, full = Pending(txn, self._sql.chunk), list[bytes]()
            out = ChunkWriter(full.append, chunk_size)
            for piece in pieces:
                out.write(piece)
                for chunk in full:
                    chunks.put(chunk)
                full.clear()
            written = chunks.finish(inline(head), out.tail())
            self._commit(txn, where, written, None)
