# Written by tools/unasync.py from async_resigning.py: edit that file, then run the script.
"""Signing a store in place, on its stored bytes: nothing is ever unpickled or decoded.

After a key rotation (``secret_key=[new, old]``), each value signed by a key in the
list is checked, frame by frame, and signed again by the first key. A value that is
unsigned, altered, moved from another user or key, or signed by a key not in the
list is refused, counted and listed, never signed: someone who could write the
store without the key may have planted it. A store that has never had a key holds
only unsigned values; signing those is a separate choice, ``trust_unsigned=True``,
which trusts every value in the store as it is.

Each value is rewritten with the engine's atomic update, so a write racing from
the app is never lost: it comes first and is signed, or after, and is signed by
its writer. The checked bytes of one value are held in memory while it is signed
again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

from . import checksums, records
from .activity import Progress
from .backends.base import Backend
from .exceptions import DeserializationError
from .keys import Key, Where
from .reports import SignReport
from .serialization import Codec, kind_name
from .signing import LEGACY_HEADER_SIZE, LEGACY_MAGIC, Signer
from .streams import ChunkReader, Readable, Seekable, Writable

logger = logging.getLogger("dash_database")


class Checked(NamedTuple):
    """A value's stored bytes (serialized, maybe compressed), checked against its signature,
    never decoded; and the record's flags and fields other than the signature's."""

    kind: bytes
    data: bytes
    flags: int
    fields: bytes


def _same(value: Any) -> Any:
    return value


class Resealer(Codec):
    """A codec whose "values" are :class:`Checked` bytes: it loads a record by checking
    its signature (a 2.3 one too), and dumps it signed by the current key.

    :param codec: the store's codec, with its signer.
    :param trust_unsigned: take unsigned records as they are, and sign them.
    """

    def __init__(self, codec: Codec, trust_unsigned: bool) -> None:
        assert codec.signer is not None
        super().__init__(codec.name, signer=codec.signer)
        self._signer: Signer = codec.signer
        self._trust_unsigned = trust_unsigned

    def load_record(self, record: bytes, where: Where) -> Checked:
        """The checked bytes of a record that holds its body."""
        start = records.body_start(record)
        return self.load(bytes(record[:start]), [record[start:]], where)

    def load_file(self, head: bytes, file: Seekable, where: Where) -> Checked:
        """The checked bytes of a record whose body is ``file``."""
        return self._check(head, file, where)

    def load(self, head: bytes, chunks: Iterable[bytes], where: Where) -> Checked:
        """The checked bytes of a record whose body is ``chunks``."""
        return self._check(head, ChunkReader(chunks), where)

    def _check(self, head: bytes, stream: Readable, where: Where) -> Checked:
        kind_name(head)  # a kind this library writes, or refused as damaged
        kind, compressed = records.kind(head), records.fields(head, records.COMPRESSED)
        flags = records.flags(head) & records.COMPRESSED
        if records.has_header(head) and records.flags(head) & records.SIGNED:
            context = self._signer.open_head(head, where)
        else:
            start = stream.read(LEGACY_HEADER_SIZE)
            if not start.startswith(LEGACY_MAGIC) and self._trust_unsigned:
                data = start + stream.read()
                if records.flags(head) & records.CHECKSUMMED:
                    # Trusted as written, not as damaged since: a signature would seal it.
                    checksums.check(data, records.fields(head, records.CHECKSUMMED), where)
                return Checked(kind, data, flags, compressed)
            context = self._signer.legacy_context(start, where, kind_name(head))
        return Checked(kind, b"".join(self._signer.frames(stream, context)), flags, compressed)

    def dump(self, value: Any, out: Writable, where: Where) -> bytes:
        """Write the checked bytes signed by the current key; return the record's head."""
        signing = self._signer.start(out, value.kind)
        signing.write(value.data)
        return signing.finish(where, value.flags, value.fields)


def sign_values(
    backend: Backend, progress: Progress | None = None, trust_unsigned: bool = False
) -> SignReport:
    """Sign every value of ``backend`` that its current key did not sign (see the module).

    :param progress: called with the running count of values looked at.
    :param trust_unsigned: sign unsigned values too, trusting each one as it is.
    :raises ValueError: the store was opened without a ``secret_key``.
    """
    signer = backend.codec.signer
    if signer is None:
        raise ValueError("open the store with a secret_key to sign its values")
    resealer = Resealer(backend.codec, trust_unsigned)
    signed, looked = 0, 0
    refusals: list[tuple[Key, Key, str]] = []
    for user_id in backend.users():
        for key_name in (backend.keys(user_id, None))[0]:
            looked += 1
            try:
                head = backend.head(user_id, key_name, LEGACY_HEADER_SIZE)
                if head is not None and not signer.signed_by_current_key(head):
                    # False: deleted since it was listed.
                    signed += backend.recode(user_id, key_name, resealer, _same)
            except DeserializationError as exc:
                refusals.append((user_id, key_name, str(exc)))
                logger.warning("%s: not signed: %s", backend.location, exc)
            if progress is not None:
                progress(looked)
    return SignReport(signed, len(refusals), tuple(refusals))


def upgrade_legacy(backend: Backend, user_id: Key) -> None:
    """Sign again, in this version's form, the user's values that 2.3 signed (their
    signatures name the user, so a rename would break them); others are left alone."""
    if backend.codec.signer is None:
        return
    resealer = Resealer(backend.codec, trust_unsigned=False)
    for key_name in (backend.keys(user_id, None))[0]:
        try:
            head = backend.head(user_id, key_name, len(LEGACY_MAGIC))
            if head is None or records.has_header(head) or not head[1:].startswith(LEGACY_MAGIC):
                continue
            backend.recode(user_id, key_name, resealer, _same)
        except DeserializationError as exc:
            logger.warning("%s: left as it is: %s", backend.location, exc)
