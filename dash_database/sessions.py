"""Session ids: what identifies one browser tab's values."""

from __future__ import annotations

import re
import secrets
from typing import Any

from .exceptions import InvalidSessionIdError
from .stats import Stats, UserStats

# 2.3 and earlier defined these two here; they still import from here.
__all__ = ["SESSION_ID_PATTERN", "Stats", "UserStats", "check_session_id", "new_session_id"]

#: Bytes of randomness in a session id (256 bits, beyond any guessing).
SESSION_ID_BYTES = 32

# 22 URL-safe characters carry 132 bits: anything shorter is too guessable to
# accept from a browser; 128 characters is far above what new_session_id makes.
#: What a session id from a browser must look like (also checked in the browser).
SESSION_ID_PATTERN = r"[A-Za-z0-9_-]{22,128}"
_SESSION_ID = re.compile(SESSION_ID_PATTERN)


def new_session_id() -> str:
    """Return a fresh, unguessable, URL-safe session id from :mod:`secrets`.

    Unlike 1.0's ``uuid.uuid1()`` (the time plus the server's MAC address),
    it cannot be predicted from other ids.
    """
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def check_session_id(session_id: Any) -> str:
    """Return ``session_id`` if it has the shape of :func:`new_session_id`'s ids.

    Ids that come back from a browser can be edited by its user, so they are
    checked before they reach storage.

    :raises ~dash_database.exceptions.InvalidSessionIdError: not a ``str`` of 22
        to 128 URL-safe characters (``A-Z a-z 0-9 _ -``).
    """
    if isinstance(session_id, str) and _SESSION_ID.fullmatch(session_id):
        return session_id
    shown = repr(session_id) if len(repr(session_id)) <= 60 else repr(session_id)[:57] + "..."
    raise InvalidSessionIdError(
        f"session_id {shown} is not a session id made by new_session_id() "
        "(22 to 128 characters of A-Z a-z 0-9 _ -); the browser sent a malformed or "
        "edited id: reload the page to get a fresh session"
    )
