"""Session ids: what identifies one browser tab's values."""

from __future__ import annotations

import secrets

#: Bytes of randomness in a session id (256 bits, beyond any guessing).
SESSION_ID_BYTES = 32


def new_session_id() -> str:
    """Return a fresh, unguessable, URL-safe session id from :mod:`secrets`.

    Unlike 1.0's ``uuid.uuid1()`` (the time plus the server's MAC address),
    it cannot be predicted from other ids.
    """
    return secrets.token_urlsafe(SESSION_ID_BYTES)
