"""The clock of session activity, and durations given as seconds or a ``timedelta``."""

from __future__ import annotations

import datetime
import time


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
