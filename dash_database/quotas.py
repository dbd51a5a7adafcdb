"""Quotas: limits on what one user, or the whole store, may hold.

Nothing is ever evicted to make room: a write that would pass a limit is
refused with :class:`~dash_database.exceptions.QuotaExceededError`, and
nothing changes. Engines check the limits against their counters inside the
transaction (the script, on Redis) that writes, so writers racing in many
threads or processes never take a user, or the store, past a limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .exceptions import QuotaExceededError
from .keys import Key

#: The limit names, in the order engines report a refusal (1, 2, 3).
LIMITS = ("max_keys_per_user", "max_bytes_per_user", "max_total_bytes")


def _check_limit(name: str, limit: Any) -> int | None:
    if limit is None:
        return None
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise TypeError(f"{name} must be an int or None, not {type(limit).__name__}")
    if limit < 1:
        raise ValueError(f"{name} must be at least 1, not {limit}")
    return limit


@dataclass(frozen=True)
class Usage:
    """What a user and the store hold, by the counters, before one write.

    :param user_keys: the user's values.
    :param user_bytes: the stored bytes of the user's values.
    :param total_bytes: the stored bytes of every value in the store.
    :param old_size: the stored bytes of the value the write replaces, or ``None``.
    """

    user_keys: int
    user_bytes: int
    total_bytes: int
    old_size: int | None


class Quotas:
    """The limits set on one database; engines hold it as ``backend.quotas``.

    :param max_keys_per_user: refuse a write that would give a user more values.
    :param max_bytes_per_user: refuse a write that would make a user's values
        take more bytes, serialized.
    :param max_total_bytes: refuse a write that would make the store take more bytes.
    :raises TypeError: a limit that is not an int.
    :raises ValueError: a limit below 1.
    """

    def __init__(
        self,
        max_keys_per_user: int | None,
        max_bytes_per_user: int | None,
        max_total_bytes: int | None,
    ) -> None:
        self.max_keys_per_user = _check_limit(LIMITS[0], max_keys_per_user)
        self.max_bytes_per_user = _check_limit(LIMITS[1], max_bytes_per_user)
        self.max_total_bytes = _check_limit(LIMITS[2], max_total_bytes)

    def limits(self) -> tuple[int | None, int | None, int | None]:
        """The three limits, in the order of :data:`LIMITS`."""
        return self.max_keys_per_user, self.max_bytes_per_user, self.max_total_bytes

    def check(self, user_id: Key, key_name: Key, size: int, usage: Usage) -> None:
        """Refuse a write of ``size`` stored bytes that would pass a limit.

        :raises QuotaExceededError: naming the limit and the sizes.
        """
        kept, new_key = (usage.old_size or 0), usage.old_size is None
        limit = self.max_keys_per_user
        if new_key and limit is not None and usage.user_keys + 1 > limit:
            raise self.error(1, user_id, key_name, size, usage.user_keys)
        after_user = usage.user_bytes - kept + size
        if self.max_bytes_per_user is not None and after_user > self.max_bytes_per_user:
            raise self.error(2, user_id, key_name, size, after_user)
        after_total = usage.total_bytes - kept + size
        if self.max_total_bytes is not None and after_total > self.max_total_bytes:
            raise self.error(3, user_id, key_name, size, after_total)

    def error(
        self, which: int, user_id: Key, key_name: Key, size: int, figure: int
    ) -> QuotaExceededError:
        """The error for passing limit number ``which`` (1-3, as in :data:`LIMITS`).

        :param figure: for the key limit, the values the user has; else the bytes after the write.
        """
        name, limit = LIMITS[which - 1], self.limits()[which - 1]
        if which == 1:
            return QuotaExceededError(
                f"max_keys_per_user={limit}: user_id={user_id!r} already has {figure} values; "
                f"storing key_name={key_name!r} would make {figure + 1}. Nothing was stored; "
                "delete some of its values or raise the limit"
            )
        whose = f"user_id={user_id!r}'s values" if which == 2 else "the store"
        return QuotaExceededError(
            f"{name}={limit:,}: the value for key_name={key_name!r} takes {size:,} bytes "
            f"and would make {whose} take {figure:,} bytes. Nothing was stored; "
            "delete values or raise the limit"
        )
