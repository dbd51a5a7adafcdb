"""Quotas: limits on what one user, or the whole store, may hold.

Nothing is ever evicted to make room: a write that would pass a limit is
refused with :class:`~dash_database.exceptions.QuotaExceededError`, and
nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .backends.base import Backend
from .exceptions import QuotaExceededError
from .keys import Key

#: Checks one new value against the byte quotas; raises if it does not fit.
ValueCheck = Callable[[Any], None]


def _no_quota(value: Any) -> None:
    """The byte-quota check when no byte quota is set: every value fits."""


def _check_limit(name: str, limit: Any) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise TypeError(f"{name} must be an int or None, not {type(limit).__name__}")
    if limit < 1:
        raise ValueError(f"{name} must be at least 1, not {limit}")
    return limit


class Quotas:
    """The limits set on one database.

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
        limits = {
            "max_keys_per_user": max_keys_per_user,
            "max_bytes_per_user": max_bytes_per_user,
            "max_total_bytes": max_total_bytes,
        }
        self._limits = {name: _check_limit(name, v) for name, v in limits.items() if v is not None}

    def around(
        self, func: Callable[[Any], Any], backend: Backend, user_id: Key, key_name: Key
    ) -> Callable[[Any], Any]:
        """``func``, with the value it returns checked against the quotas before it is stored.

        :raises QuotaExceededError: as :meth:`check`, now or when the result is checked.
        """
        check = self.check(backend, user_id, key_name)

        def checked(old: Any) -> Any:
            new = func(old)
            check(new)
            return new

        return checked

    def check(self, backend: Backend, user_id: Key, key_name: Key) -> ValueCheck:
        """Check the key quota now; return the check of a new value against the byte quotas.

        :raises QuotaExceededError: the user already has as many values as allowed.
        """
        if not self._limits:
            return _no_quota
        old = {key: size or 0 for _, key, size in backend.value_sizes(user_id)}
        limit = self._limits.get("max_keys_per_user")
        if limit is not None and key_name not in old and len(old) + 1 > limit:
            raise QuotaExceededError(
                f"max_keys_per_user={limit}: user_id={user_id!r} already has {len(old)} values; "
                f"storing key_name={key_name!r} would make {len(old) + 1}. Nothing was stored; "
                "delete some of its values or raise the limit"
            )
        user_limit = self._limits.get("max_bytes_per_user")
        total_limit = self._limits.get("max_total_bytes")
        if user_limit is None and total_limit is None:
            return _no_quota
        kept = sum(old.values()) - old.get(key_name, 0)
        total = None
        if total_limit is not None:
            stored = sum(size or 0 for *_, size in backend.value_sizes(None))
            total = stored - old.get(key_name, 0)

        def check(value: Any) -> None:
            size = backend.codec.size(value)
            for name, limit, after in (
                ("max_bytes_per_user", user_limit, kept + size),
                ("max_total_bytes", total_limit, None if total is None else total + size),
            ):
                if limit is not None and after is not None and after > limit:
                    whose = (
                        f"user_id={user_id!r}'s values"
                        if name == "max_bytes_per_user"
                        else "the store"
                    )
                    raise QuotaExceededError(
                        f"{name}={limit:,}: the value for key_name={key_name!r} takes "
                        f"{size:,} bytes and would make {whose} take {after:,} bytes. "
                        "Nothing was stored; delete values or raise the limit"
                    )

        return check
