"""Session ids: what identifies one browser tab's values."""

from __future__ import annotations

import datetime
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from .exceptions import InvalidSessionIdError

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


def now() -> float:
    """The current time for session activity; tests replace it with a controllable clock."""
    return time.time()


def to_seconds(argument: str, value: float | datetime.timedelta) -> float:
    """Return a duration given as seconds or a ``timedelta``, in seconds.

    :raises TypeError: neither a number nor a ``timedelta``.
    :raises ValueError: not more than zero.
    """
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(
            f"{argument} must be seconds (int or float) or a datetime.timedelta, "
            f"not {type(value).__name__}"
        )
    if not seconds > 0:
        raise ValueError(f"{argument} must be more than 0 seconds, not {value!r}")
    return seconds


@dataclass(frozen=True)
class Stats:
    """What a database holds (expired users excluded).

    :param users: users holding at least one value.
    :param keys: values stored.
    :param bytes: bytes the serialized values take in storage.
    :param missing: with ``check=True``, values whose data is missing (a side
        file or chunk removed behind the store's back) or whose record is
        damaged, and their bytes are not counted; else ``None`` (not checked).
    """

    users: int
    keys: int
    bytes: int
    missing: int | None = None


@dataclass(frozen=True)
class UserStats:
    """What one user holds.

    :param keys: values stored.
    :param bytes: bytes the serialized values take in storage.
    :param last_activity: when the user last read or wrote (``time.time()``
        seconds, recorded at most once per refresh interval), or ``None``.
    :param missing: with ``check=True``, values whose data is missing or whose
        record is damaged; else ``None`` (not checked).
    """

    keys: int
    bytes: int
    last_activity: float | None
    missing: int | None = None
