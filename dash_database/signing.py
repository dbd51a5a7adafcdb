"""Signed values: with a ``secret_key``, a forged, altered or moved record is refused unread.

A signed record has a header (see :mod:`.records`) with the :data:`~.records.SIGNED`
flag, whose fields are the signing key's fingerprint, a random *record id*, and a
*binding*; its body is the serialized bytes cut in frames::

    frame = up to FRAME bytes of data | MAC (32)

Each frame's MAC (keyed BLAKE2b-256) covers the record id, the frame's number and
whether it is the last, then its data: frames cannot be reordered, cut short or
mixed from two values (a side file swapped while it is read), and each is checked
before the unpickler sees a byte of it. The binding is a MAC of the rest of the
header (record id, format, flags and their fields) and of the user id and key name:
the value cannot be moved to another user or key, nor its flags changed. A rename
rewrites the binding alone (:meth:`Signer.rebind`), after checking the old one, so it
never reads or rewrites a value's data, and a forged record is not laundered by it.

The fingerprint (a MAC of a constant, never the key) tells "signed with a key not
in the list" apart from "altered". Values signed by 2.3 carry no header: their
serialized bytes start with :data:`LEGACY_MAGIC` and bind every frame to the user
and key; they still read (:meth:`Signer.legacy_context`), and a rename or
``sign_values`` signs them again in the new form.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from . import records
from .exceptions import DeserializationError
from .keys import Where

logger = logging.getLogger("dash_database")

#: How the serialized bytes of a value signed by 2.3 start (no serializer's output
#: starts with a NUL byte).
LEGACY_MAGIC = b"\x00DS\x01"
#: Data bytes per frame; a large value is checked one frame at a time.
FRAME = 1 << 20
MAC_SIZE = 32
FINGERPRINT_SIZE = 4
RECORD_ID_SIZE = 16
#: The header of a value signed by 2.3, at the start of its serialized bytes.
LEGACY_HEADER_SIZE = len(LEGACY_MAGIC) + FINGERPRINT_SIZE + RECORD_ID_SIZE
#: What starts the MAC input of a frame, and of a binding: never the same.
_FRAME_DOMAIN, _BINDING_DOMAIN = b"\x01", b"\x02"
# The frame number and last-frame flag of a value that is one frame.
_ONLY_FRAME = bytes(8) + b"\x01"
#: Keys shorter than this many bytes work, with a warning.
RECOMMENDED_KEY_BYTES = 32
# Where the signed fields sit in a record's head (tag, fixed header, then SIGNED's fields).
_PRINT_AT = 1 + records.FIXED
_ID_AT = _PRINT_AT + FINGERPRINT_SIZE
_BINDING = slice(_ID_AT + RECORD_ID_SIZE, _ID_AT + RECORD_ID_SIZE + MAC_SIZE)

#: One secret key, or several for rotation (the first signs, every one verifies).
SecretKey = str | bytes | Sequence[str | bytes]
#: A value's keyed MAC state, and what each of its frames' MAC input starts with.
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


def _mac(key: Any, *parts: Any) -> bytes:
    mac = key.copy()  # copying a keyed state is cheaper than keying again
    for part in parts:
        mac.update(part)
    return bytes(mac.digest())


def _frame_mac(context: Context, index: int, last: bool, data: Any) -> bytes:
    return _mac(
        context[0], context[1] + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00"), data
    )


class Signer:
    """Signs with the first of ``secret_key``'s keys, and verifies with every one.

    :param secret_key: a key (``str`` or ``bytes``), or a list of them.
    :raises TypeError: a key that is neither.
    :raises ValueError: an empty key or list.
    """

    def __init__(self, secret_key: SecretKey) -> None:
        keys = [secret_key] if isinstance(secret_key, (str, bytes)) else list(secret_key)
        if not keys:
            raise ValueError("secret_key is an empty list; pass at least one key")
        raw = [_key_bytes(key, position) for position, key in enumerate(keys, 1)]
        # Keyed BLAKE2b: a MAC by design, and faster than HMAC. It takes keys of up
        # to 64 bytes: a longer one is hashed to 64.
        self._keys = {
            fingerprint(key): hashlib.blake2b(
                key=key if len(key) <= 64 else hashlib.blake2b(key).digest(), digest_size=MAC_SIZE
            )
            for key in reversed(raw)
        }
        #: The fingerprint of the key that signs.
        self.fingerprint = fingerprint(raw[0])

    def start(self, out: Writable, kind: bytes) -> SigningWriter:
        """A writer that frames and signs, under a new record id, what is written to it into
        ``out``; its :meth:`SigningWriter.finish` returns the record's head."""
        record_id = os.urandom(RECORD_ID_SIZE)
        context = (self._keys[self.fingerprint], _FRAME_DOMAIN + record_id)
        return SigningWriter(out, context, self, kind, record_id)

    def head(
        self,
        kind: bytes,
        record_id: bytes,
        where: Where,
        print_: bytes = b"",
        flags: int = 0,
        fields: bytes = b"",
    ) -> bytes:
        """The head (tag and header) of a record signed under ``record_id``, bound to ``where``.

        :param flags: other flags, whose ``fields`` follow the signed ones.
        """
        print_ = print_ or self.fingerprint
        signed = print_ + record_id + bytes(MAC_SIZE)
        head = b"H" + records.make_header(records.SIGNED | flags, kind, signed + fields)
        return self._bound(head, print_, where)

    def _bound(self, head: bytes, print_: bytes, where: Where) -> bytes:
        """``head`` with its binding to ``where``: a MAC of everything else in the header."""
        unbound = head[1 : _BINDING.start] + head[_BINDING.stop :]
        binding = _mac(self._keys[print_], _BINDING_DOMAIN + unbound, _names(where))
        return head[: _BINDING.start] + binding + head[_BINDING.stop :]

    def open_head(self, head: bytes, where: Where) -> Context:
        """The frames' context of a signed record whose head is ``head``, once its binding
        to ``where`` is checked.

        :raises DeserializationError: unsigned, signed with an unknown key, altered or moved.
        """
        records.body_start(head)  # a header this version reads, or refused as such
        if not records.flags(head) & records.SIGNED:
            raise _refused("unsigned", where)
        print_ = head[_PRINT_AT:_ID_AT]
        key = self._keys.get(print_)
        if key is None:
            raise _refused("unknown key", where, print_)
        if not hmac.compare_digest(head[_BINDING], self._bound(head, print_, where)[_BINDING]):
            raise _refused("altered", where)
        return key, _FRAME_DOMAIN + head[_ID_AT : _BINDING.start]

    def rebind(self, head: bytes, old: Where, new: Where) -> bytes | None:
        """The head of a signed record moved from ``old`` to ``new`` (its data unchanged);
        ``None`` if ``head`` is not a valid signed head for ``old``, so that a forged
        record is never laundered by a rename: it stays refused."""
        if not records.has_header(head) or not records.flags(head) & records.SIGNED:
            return None
        try:
            self.open_head(head, old)
        except DeserializationError:
            return None
        return self._bound(head, head[_PRINT_AT:_ID_AT], new)

    def frames(
        self, stream: Readable, context: Context, raw: bool = False
    ) -> Iterator[bytes | memoryview]:
        """The data of each frame of ``stream``, each checked before it is yielded (with
        ``raw``, the stored frames themselves, MACs included).

        :raises DeserializationError: a frame was altered, reordered or cut.
        """
        index, pending = 0, stream.read(FRAME + MAC_SIZE)
        while True:
            # A frame is the last one when nothing follows it: look one byte ahead.
            ahead = stream.read(1) if len(pending) == FRAME + MAC_SIZE else b""
            last = not ahead
            # Slices of a memoryview: a frame's data is not copied before the unpickler's read.
            data, mac = memoryview(pending)[:-MAC_SIZE], pending[-MAC_SIZE:]
            if len(pending) < MAC_SIZE or not hmac.compare_digest(
                mac, _frame_mac(context, index, last, data)
            ):
                raise DeserializationError(
                    "a signed value's frame does not match its signature: it was altered, "
                    "or mixed from two values. It was not loaded"
                )
            yield pending if raw else data
            if last:
                return
            index, pending = index + 1, ahead + stream.read(FRAME + MAC_SIZE - 1)

    def one_frame(self, head: bytes, body: bytes | memoryview, where: Where) -> Any:
        """The checked data of a record that is one frame (most are), without copying;
        ``None`` if it has more frames (read those with :meth:`frames`).

        :raises DeserializationError: as :meth:`open_head`, or altered.
        """
        if len(body) > FRAME + MAC_SIZE:
            return None
        context = self.open_head(head, where)
        data = body[:-MAC_SIZE]
        if len(body) < MAC_SIZE or not hmac.compare_digest(
            body[-MAC_SIZE:], _mac(context[0], context[1] + _ONLY_FRAME, data)
        ):
            raise _refused("altered", where)
        return data

    def legacy_context(self, header: bytes, where: Where, serializer: str) -> Context:
        """The frames' context of a value signed by 2.3, from the first
        :data:`LEGACY_HEADER_SIZE` bytes of its serialized data.

        :raises DeserializationError: unsigned, signed with an unknown key.
        """
        if len(header) < LEGACY_HEADER_SIZE or not header.startswith(LEGACY_MAGIC):
            raise _refused("unsigned", where)
        print_ = header[len(LEGACY_MAGIC) : len(LEGACY_MAGIC) + FINGERPRINT_SIZE]
        if print_ not in self._keys:
            raise _refused("unknown key", where, print_)
        nonce = header[len(LEGACY_MAGIC) + FINGERPRINT_SIZE : LEGACY_HEADER_SIZE]
        return self._keys[print_], print_ + nonce + _names(where) + serializer.encode()

    def signed_by_current_key(self, head: bytes) -> bool:
        """Whether a record starting with ``head`` is signed, in this version's form, by the
        signing key."""
        return (
            records.has_header(head)
            and bool(records.flags(head) & records.SIGNED)
            and head[_PRINT_AT:_ID_AT] == self.fingerprint
        )


_REASONS = {
    "unsigned": "is not signed: it was written without a secret_key, or forged. To sign a "
    "store whose values you trust, see sign_values (dash-database LOCATION sign)",
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


def refuse_signed(head: bytes, data_start: bytes, where: Where) -> None:
    """Refuse, with a clear message, a signed record read by a store that has no key.

    :param head: the record's head (tag, and header if any).
    :param data_start: the first bytes of its serialized data.
    :raises DeserializationError: the record is signed.
    """
    if records.flags(head) & records.SIGNED or data_start[: len(LEGACY_MAGIC)] == LEGACY_MAGIC:
        raise DeserializationError(
            f"the value of key_name={where[1]!r} of user_id={where[0]!r} is signed: open the "
            "store with its secret_key to read it (the CLI reads DASH_DATABASE_SECRET_KEY)"
        )


class SigningWriter:
    """Frames and signs what is written; :meth:`finish` writes the last frame.

    A frame is written only once more data is known to follow it, so the
    last frame is whatever remains at :meth:`finish`.
    """

    def __init__(
        self, out: Writable, context: Context, signer: Signer, kind: bytes, record_id: bytes
    ) -> None:
        self._out, self._context = out, context
        self._signer, self._kind, self._record_id = signer, kind, record_id
        self._buf = bytearray()
        self._index = 0

    def _emit(self, data: Any, last: bool) -> None:
        self._out.write(data)
        self._out.write(_frame_mac(self._context, self._index, last, data))
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

    def finish(self, where: Where, flags: int = 0, fields: bytes = b"") -> bytes:
        """Write the last frame; return the head of the record, bound to ``where``, with
        these other ``flags`` and their ``fields``."""
        self._emit(self._buf, last=True)
        return self._signer.head(self._kind, self._record_id, where, flags=flags, fields=fields)
