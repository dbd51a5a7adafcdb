"""Signed values: with a ``secret_key``, a forged or altered record is refused unread.

A signed value's serialized bytes are framed before they are stored (inline,
in a side file or in Redis chunks alike)::

    MAGIC | key fingerprint (4) | nonce (16) | frame 0 | frame 1 | ...
    frame = up to FRAME bytes of data | HMAC-SHA256 (32)

Each frame's MAC covers the fingerprint, the nonce, the user id, the key
name, the serializer, the frame's number and whether it is the last, then its
data. So a value cannot be moved to another user or key, frames cannot be
reordered, cut short or mixed from two values (a side file swapped while it
is read), and each frame is checked before the unpickler sees a byte of it.
The fingerprint (a MAC of a constant, never the key) tells "signed with a key
not in the list" apart from "altered". No serialized value starts with a NUL
byte, so :data:`MAGIC` also tells signed bytes from unsigned ones.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from .exceptions import DeserializationError
from .keys import Key, encode_key

logger = logging.getLogger("dash_database")

MAGIC = b"\x00DS\x01"
#: Data bytes per frame; a large value is checked one frame at a time.
FRAME = 1 << 20
MAC_SIZE = 32
FINGERPRINT_SIZE = 4
NONCE_SIZE = 16
HEADER_SIZE = len(MAGIC) + FINGERPRINT_SIZE + NONCE_SIZE
#: Keys shorter than this many bytes work, with a warning.
RECOMMENDED_KEY_BYTES = 32

#: One secret key, or several for rotation (the first signs, every one verifies).
SecretKey = str | bytes | Sequence[str | bytes]
#: Whose value a record is: ``(user_id, key_name)``.
Where = tuple[Key, Key]


class Readable(Protocol):
    """What frames are read from: ``read(n)`` gives ``n`` bytes unless the stream ends."""

    def read(self, size: int = -1, /) -> bytes: ...


class Writable(Protocol):
    """What frames are written to."""

    def write(self, data: Any) -> int: ...


def fingerprint(key: bytes) -> bytes:
    """A short public name of ``key`` (a MAC of a constant): it reveals nothing of the key."""
    return hmac.digest(key, b"dash_database key fingerprint", "sha256")[:FINGERPRINT_SIZE]


def _key_bytes(key: object, position: int) -> bytes:
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, bytes):
        raise TypeError(
            f"secret_key must be a str, bytes, or a list of them, not {type(key).__name__}"
        )
    if not key:
        raise ValueError(f"secret_key number {position} is empty; pass 32 random bytes")
    if len(key) < RECOMMENDED_KEY_BYTES:
        logger.warning(
            "secret_key number %d is %d bytes long; use at least %d random bytes, "
            "e.g. secrets.token_bytes(32)",
            position,
            len(key),
            RECOMMENDED_KEY_BYTES,
        )
    return key


class Signer:
    """Signs with the first of ``secret_key``'s keys, and verifies with every one.

    :param secret_key: a key (``str`` or ``bytes``), or a list of them.
    :raises TypeError: a key that is neither.
    :raises ValueError: an empty key or list.
    """

    def __init__(self, secret_key: SecretKey, accept_unsigned: bool = False) -> None:
        #: Read unsigned values as they are (only to sign a trusted store in place).
        self.accept_unsigned = accept_unsigned
        self._secret_key = secret_key
        keys = [secret_key] if isinstance(secret_key, (str, bytes)) else list(secret_key)
        if not keys:
            raise ValueError("secret_key is an empty list; pass at least one key")
        raw = [_key_bytes(key, position) for position, key in enumerate(keys, 1)]
        # One HMAC state per key, keyed once; each value copies it.
        self._macs = {fingerprint(key): hmac.new(key, digestmod="sha256") for key in reversed(raw)}
        self.fingerprint = fingerprint(raw[0])

    def accepting_unsigned(self) -> Signer:
        """This signer, reading unsigned values too (to sign a store you trust, in place)."""
        return Signer(self._secret_key, accept_unsigned=True)

    def _context(self, print_: bytes, nonce: bytes, where: Where, serializer: str) -> Any:
        mac = self._macs[print_].copy()
        for part in (print_, nonce, *(encode_key(k).encode() for k in where), serializer.encode()):
            mac.update(len(part).to_bytes(4, "big") + part)
        return mac

    @staticmethod
    def _frame_mac(context: Any, index: int, last: bool, data: Any) -> bytes:
        mac = context.copy()
        mac.update(index.to_bytes(8, "big") + (b"\x01" if last else b"\x00"))
        mac.update(data)
        return bytes(mac.digest())

    def writer(self, out: Writable, where: Where, serializer: str) -> SigningWriter:
        """A writer that frames and signs what is written to it into ``out``."""
        nonce = os.urandom(NONCE_SIZE)
        out.write(MAGIC + self.fingerprint + nonce)
        return SigningWriter(out, self._context(self.fingerprint, nonce, where, serializer))

    def signed_by_current_key(self, head: bytes) -> bool:
        """Whether serialized bytes starting with ``head`` carry the signing key's fingerprint."""
        return head[: len(MAGIC) + FINGERPRINT_SIZE] == MAGIC + self.fingerprint

    def frames(
        self, stream: Readable, where: Where, serializer: str, raw: bool = False
    ) -> Iterator[bytes]:
        """The data of each frame of ``stream``, each checked before it is yielded (with
        ``raw``, the stored bytes themselves: header, then each frame with its MAC).

        :raises DeserializationError: unsigned, signed with an unknown key, or altered.
        """
        header = stream.read(HEADER_SIZE)
        context = self._check_header(header, where, serializer)
        if context is None:  # unsigned, and accepted
            yield header
            yield from iter(lambda: stream.read(FRAME), b"")
            return
        if raw:
            yield header
        index, pending = 0, stream.read(FRAME + MAC_SIZE)
        while True:
            # A frame is the last one when nothing follows it: look one byte ahead.
            ahead = stream.read(1) if len(pending) == FRAME + MAC_SIZE else b""
            last = not ahead
            data, mac = pending[:-MAC_SIZE], pending[-MAC_SIZE:]
            if len(pending) < MAC_SIZE or not hmac.compare_digest(
                mac, self._frame_mac(context, index, last, data)
            ):
                raise _refused("altered", where)
            yield pending if raw else data
            if last:
                return
            index, pending = index + 1, ahead + stream.read(FRAME + MAC_SIZE - 1)

    def record_data(self, payload: memoryview, where: Where, serializer: str) -> memoryview | None:
        """The checked data of a one-frame record, without copying; ``None`` if it has more
        frames (read those with :meth:`frames`).

        :raises DeserializationError: unsigned, signed with an unknown key, or altered.
        """
        if len(payload) > HEADER_SIZE + FRAME + MAC_SIZE:
            return None
        context = self._check_header(bytes(payload[:HEADER_SIZE]), where, serializer)
        if context is None:  # unsigned, and accepted
            return payload
        data, mac = payload[HEADER_SIZE:-MAC_SIZE], payload[-MAC_SIZE:]
        if len(payload) < HEADER_SIZE + MAC_SIZE or not hmac.compare_digest(
            bytes(mac), self._frame_mac(context, 0, True, data)
        ):
            raise _refused("altered", where)
        return data

    def _check_header(self, header: bytes, where: Where, serializer: str) -> Any:
        if not header.startswith(MAGIC) and self.accept_unsigned:
            return None
        if len(header) < HEADER_SIZE or not header.startswith(MAGIC):
            raise _refused("unsigned", where)
        print_ = header[len(MAGIC) : len(MAGIC) + FINGERPRINT_SIZE]
        if print_ not in self._macs:
            raise _refused("unknown key", where, print_)
        return self._context(print_, header[len(MAGIC) + FINGERPRINT_SIZE :], where, serializer)


_REASONS = {
    "unsigned": "is not signed: it was written without a secret_key, or forged. To sign a "
    "store whose values you trust, run db.sign_values() (or: dash-database LOCATION sign)",
    "unknown key": "is signed with a key that is not in secret_key (fingerprint {}); add that "
    "key to the list to read it",
    "altered": "has a signature that does not match: it was altered, or moved from another "
    "user or key; delete it",
}


def _refused(reason: str, where: Where, print_: bytes = b"") -> DeserializationError:
    what = _REASONS[reason].format(print_.hex())
    return DeserializationError(
        f"the value of key_name={where[1]!r} of user_id={where[0]!r} {what}. It was not loaded"
    )


def refuse_signed(head: bytes, where: Where) -> None:
    """Refuse, with a clear message, signed bytes read by a store that has no key.

    :raises DeserializationError: ``head`` starts a signed value.
    """
    if head[: len(MAGIC)] == MAGIC:
        raise DeserializationError(
            f"the value of key_name={where[1]!r} of user_id={where[0]!r} is signed: open the "
            "store with its secret_key to read it (the CLI reads DASH_DATABASE_SECRET_KEY)"
        )


class SigningWriter:
    """Frames and signs what is written; :meth:`finish` writes the last frame.

    A frame is written only once more data is known to follow it, so the
    last frame is whatever remains at :meth:`finish`.
    """

    def __init__(self, out: Writable, context: Any) -> None:
        self._out, self._context = out, context
        self._buf = bytearray()
        self._index = 0

    def _emit(self, data: Any, last: bool) -> None:
        mac = Signer._frame_mac(self._context, self._index, last, data)
        self._out.write(data)
        self._out.write(mac)
        self._index += 1

    def write(self, data: Any) -> int:
        """Append ``data`` (any bytes-like object); return its length."""
        view = memoryview(data).cast("B")
        written = len(view)
        if self._buf and len(self._buf) + len(view) > FRAME:
            take = FRAME - len(self._buf)
            self._buf += view[:take]
            view = view[take:]
            self._emit(self._buf, last=False)
            self._buf = bytearray()
        # Large pickle buffers are signed and written in frame-sized slices, never copied.
        while not self._buf and len(view) > FRAME:
            self._emit(view[:FRAME], last=False)
            view = view[FRAME:]
        self._buf += view
        return written

    def finish(self) -> None:
        """Write the last frame."""
        self._emit(self._buf, last=True)
