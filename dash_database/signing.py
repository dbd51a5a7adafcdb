"""Signed values: with a ``secret_key``, a forged or altered record is refused unread.

A signed value's serialized bytes are framed before they are stored (inline,
in a side file or in Redis chunks alike)::

    MAGIC | key fingerprint (4) | nonce (16) | frame 0 | frame 1 | ...
    frame = up to FRAME bytes of data | MAC (32)

Each frame's MAC (keyed BLAKE2b-256) covers the fingerprint, the nonce, the
user id, then the key name (the user's length first, so the two cannot be
shifted), the serializer, the frame's number and whether it is the last, then
its data. So a value cannot be moved to another user or key, frames cannot be
reordered, cut short or mixed from two values (a side file swapped while it
is read), and each frame is checked before the unpickler sees a byte of it.
The fingerprint (a MAC of a constant, never the key) tells "signed with a key
not in the list" apart from "altered". No serialized value starts with a NUL
byte, so :data:`MAGIC` also tells signed bytes from unsigned ones.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from .exceptions import DeserializationError
from .keys import Key

logger = logging.getLogger("dash_database")

MAGIC = b"\x00DS\x01"
#: Data bytes per frame; a large value is checked one frame at a time.
FRAME = 1 << 20
MAC_SIZE = 32
FINGERPRINT_SIZE = 4
NONCE_SIZE = 16
HEADER_SIZE = len(MAGIC) + FINGERPRINT_SIZE + NONCE_SIZE
# The frame number and last-frame flag of a value that is one frame.
_ONLY_FRAME = bytes(8) + b"\x01"
# What ends the MAC input of a one-frame value, per serializer.
_TAILS = {name: name.encode() + _ONLY_FRAME for name in ("pickle", "json")}
#: Keys shorter than this many bytes work, with a warning.
RECOMMENDED_KEY_BYTES = 32

#: One secret key, or several for rotation (the first signs, every one verifies).
SecretKey = str | bytes | Sequence[str | bytes]
#: Whose value a record is: ``(user_id, key_name)``.
Where = tuple[Key, Key]
#: A value's keyed MAC state, and the start of each of its frames' MAC input.
Context = tuple[Any, bytes]


def _names(where: Where) -> bytes:
    """A user id and key name as MAC input: each one's type, then its text (``1`` is not
    ``"1"``), the user's length first, so that the two cannot be shifted."""
    user, key = where
    user_text = (
        b"i%d" % user if isinstance(user, int) else b"s" + user.encode("utf-8", "surrogatepass")
    )
    key_text = b"i%d" % key if isinstance(key, int) else b"s" + key.encode("utf-8", "surrogatepass")
    return len(user_text).to_bytes(4, "big") + user_text + key_text


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
        # One keyed BLAKE2b state per key, copied for each MAC (cheaper than keying
        # again). BLAKE2b takes keys of up to 64 bytes: a longer one is hashed to 64.
        self._keys = {
            fingerprint(key): hashlib.blake2b(
                key=key if len(key) <= 64 else hashlib.blake2b(key).digest(), digest_size=MAC_SIZE
            )
            for key in reversed(raw)
        }
        self.fingerprint = fingerprint(raw[0])

    def accepting_unsigned(self) -> Signer:
        """This signer, reading unsigned values too (to sign a store you trust, in place)."""
        return Signer(self._secret_key, accept_unsigned=True)

    def _context(self, print_: bytes, nonce: bytes, where: Where, serializer: str) -> Context:
        """The key, and what every frame's MAC of one value starts with."""
        return self._keys[print_], print_ + nonce + _names(where) + serializer.encode()

    @staticmethod
    def _frame_mac(context: Context, index: int, last: bool, data: Any) -> bytes:
        # Keyed BLAKE2b: a MAC by design, and 0.7 us per small value against
        # 1.7 us for HMAC-SHA256 here (small reads must stay under 1.3x unsigned).
        mac = context[0].copy()
        mac.update(context[1] + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00"))
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
    ) -> Iterator[bytes | memoryview]:
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
            # Slices of a memoryview: a frame's data is not copied before the unpickler's read.
            data, mac = memoryview(pending)[:-MAC_SIZE], pending[-MAC_SIZE:]
            if len(pending) < MAC_SIZE or not hmac.compare_digest(
                mac, self._frame_mac(context, index, last, data)
            ):
                raise _refused("altered", where)
            yield pending if raw else data
            if last:
                return
            index, pending = index + 1, ahead + stream.read(FRAME + MAC_SIZE - 1)

    def record_data(
        self, record: bytes, where: Where, serializer: str
    ) -> bytes | memoryview | None:
        """The checked data of a one-frame record (its tag first), without copying; ``None``
        if it has more frames (read those with :meth:`frames`).

        :raises DeserializationError: unsigned, signed with an unknown key, or altered.
        """
        # The path of every small read: kept to a few slices and one MAC.
        if len(record) > 1 + HEADER_SIZE + FRAME + MAC_SIZE:
            return None
        header = record[1 : 1 + HEADER_SIZE]
        key = self._keys.get(header[len(MAGIC) : len(MAGIC) + FINGERPRINT_SIZE])
        if key is None or header[: len(MAGIC)] != MAGIC:
            # Raises, unless the record is unsigned and that is accepted.
            self._check_header(header, where, serializer)
            return memoryview(record)[1:]  # unsigned, and accepted
        # A small record's data is copied (faster than a view); a large one's never.
        data: bytes | memoryview = record[1 + HEADER_SIZE : -MAC_SIZE]
        if len(record) >= 4096:
            data = memoryview(record)[1 + HEADER_SIZE : -MAC_SIZE]
        mac = key.copy()
        tail = _TAILS.get(serializer) or serializer.encode() + _ONLY_FRAME
        mac.update(b"".join((header[len(MAGIC) :], _names(where), tail)))
        mac.update(data)
        if len(record) < 1 + HEADER_SIZE + MAC_SIZE or not hmac.compare_digest(
            record[-MAC_SIZE:], mac.digest()
        ):
            raise _refused("altered", where)
        return data

    def _check_header(self, header: bytes, where: Where, serializer: str) -> Context | None:
        if not header.startswith(MAGIC) and self.accept_unsigned:
            return None
        if len(header) < HEADER_SIZE or not header.startswith(MAGIC):
            raise _refused("unsigned", where)
        print_ = header[len(MAGIC) : len(MAGIC) + FINGERPRINT_SIZE]
        if print_ not in self._keys:
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

    def __init__(self, out: Writable, context: Context) -> None:
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
