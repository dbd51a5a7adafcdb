"""What a store, or one user, holds: the figures ``stats()``, ``user_stats()`` and
``inspect.users()`` return."""

from __future__ import annotations

from dataclasses import dataclass

from .keys import Key


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


@dataclass(frozen=True)
class UserSummary:
    """What one user holds, as an operator sees it.

    :param user_id: the user.
    :param keys: values stored.
    :param bytes: bytes the serialized values take.
    :param last_activity: the user's last recorded activity (``time.time()``), or ``None``.
    """

    user_id: Key
    keys: int
    bytes: int
    last_activity: float | None
