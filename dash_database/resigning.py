"""Signing a store in place: every value not signed by the current key gets signed by it.

For a store written before it had a ``secret_key``, and after a key rotation
(values signed by an older key in the list are checked, then signed again).
Unsigned values are taken as they are, so sign only a store whose values you
trust now. Each value is rewritten with the engine's atomic update, so a
write racing from the app is never lost: it comes first and is signed, or
after, and is signed by its writer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .activity import Progress
from .backends.base import MISSING, Backend
from .exceptions import DeserializationError
from .serialization import Codec
from .signing import HEADER_SIZE

logger = logging.getLogger("dash_database")


@dataclass(frozen=True)
class SignReport:
    """What :func:`sign_values` did.

    :param signed: values signed (or signed again) with the current key.
    :param refused: values left alone: altered, signed with a key not in the
        list, or written with the other serializer (each is logged).
    """

    signed: int
    refused: int


class _Gone(Exception):
    """The value was deleted since it was listed."""


def _same(value: Any) -> Any:
    if value is MISSING:
        raise _Gone
    return value


def sign_values(backend: Backend, progress: Progress | None = None) -> SignReport:
    """Sign every value of ``backend`` that its current key did not sign (see the module).

    :param progress: called with the running count of values looked at.
    :raises ValueError: the store was opened without a ``secret_key``.
    """
    signer = backend.codec.signer
    if signer is None:
        raise ValueError("open the store with a secret_key to sign its values")
    lenient = Codec(backend.codec.name, signer=signer.accepting_unsigned())
    signed = refused = looked = 0
    for user_id in backend.users():
        for key_name in backend.keys(user_id):
            looked += 1
            head = backend.head(user_id, key_name, 1 + HEADER_SIZE)
            if head is not None and not signer.signed_by_current_key(head[1:]):
                try:
                    backend.update(user_id, key_name, _same, MISSING, lenient)
                    signed += 1
                except _Gone:
                    pass
                except DeserializationError as exc:
                    refused += 1
                    logger.warning("%s: not signed: %s", backend.location, exc)
            if progress is not None:
                progress(looked)
    return SignReport(signed, refused)
