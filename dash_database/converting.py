# Written by tools/unasync.py from async_converting.py: edit that file, then run the script.
"""Converting a store's pickled values to the code-free serializer (``serializer="data"``).

Each pickled value is unpickled, which runs whatever code the pickle names: so
converting is the operator's explicit choice to trust every pickle in the store
(``trust_pickles=True``), once, so that nothing read afterwards can run code. With a
``secret_key``, only values signed by a key in the list are unpickled; the others are
refused like any read. A value that the code-free formats cannot hold (a fitted model,
an object of the app's own) is refused, listed with why, and left as it is; values
already in a code-free format are left alone. Each value is rewritten with the
engine's atomic update, so a write racing from the app is never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from . import records
from .activity import Progress
from .backends.base import Backend
from .exceptions import DashDatabaseError
from .keys import Key, Where
from .reports import ConvertReport
from .serialization import Codec
from .streams import Seekable, Writable

logger = logging.getLogger("dash_database")


class _Converter(Codec):
    """Loads with the store's pickle codec and dumps with a data codec; with ``dry_run``,
    serializes into nothing and raises :class:`_Checked` instead of writing."""

    def __init__(self, store: Codec, dry_run: bool) -> None:
        super().__init__("data", signer=store.signer, compress=store.compress, level=store.level)
        self._pickles = Codec("pickle", signer=store.signer)
        self._dry_run = dry_run

    def load_record(self, record: bytes, where: Where) -> Any:
        """Unpickle a record that holds its body."""
        return self._pickles.load_record(record, where)

    def load(self, head: bytes, chunks: Iterable[bytes], where: Where) -> Any:
        """Unpickle a record whose body is ``chunks``."""
        return self._pickles.load(head, chunks, where)

    def load_file(self, head: bytes, file: Seekable, where: Where) -> Any:
        """Unpickle a record whose body is ``file``."""
        return self._pickles.load_file(head, file, where)

    def dump(self, value: Any, out: Writable, where: Where) -> bytes:
        """Write ``value`` in a code-free format (or, dry, check that one holds it)."""
        if self._dry_run:
            super().dump(value, _Nowhere(), where)
            raise _Checked
        return super().dump(value, out, where)


class _Nowhere:
    """A write-only file that keeps nothing."""

    def write(self, data: Any) -> int:
        return memoryview(data).nbytes


class _Checked(Exception):
    """A dry run found that the value converts."""


def _is_pickle(head: bytes | None) -> bool:
    return head is not None and records.kind(head) == b"P"


def convert_to_data(
    backend: Backend, dry_run: bool = False, progress: Progress | None = None
) -> ConvertReport:
    """Rewrite every pickled value of ``backend`` in a code-free format (see the module).

    :param dry_run: unpickle and check each value, and write nothing.
    :param progress: called with the running count of values looked at.
    """
    converter = _Converter(backend.codec, dry_run)
    converted = unchanged = looked = 0
    refusals: list[tuple[Key, Key, str]] = []
    for user_id in backend.users():
        for key_name in (backend.keys(user_id, None))[0]:
            looked += 1
            try:
                if not _is_pickle(backend.head(user_id, key_name, 0)):
                    unchanged += 1
                elif backend.recode(user_id, key_name, converter, _same):
                    converted += 1
            except _Checked:
                converted += 1
            except (DashDatabaseError, TypeError, ValueError) as exc:
                refusals.append((user_id, key_name, str(exc)))
                logger.warning("%s: not converted: %s", backend.location, exc)
            if progress is not None:
                progress(looked)
    return ConvertReport(converted, unchanged, len(refusals), tuple(refusals))


def _same(value: Any) -> Any:
    return value
