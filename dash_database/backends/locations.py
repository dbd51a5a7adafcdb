"""Which engine serves a location, and the one function that opens it."""

from __future__ import annotations

import os
from typing import Any

from ..exceptions import DependencyMissingError
from ..quotas import Quotas
from ..serialization import Codec
from .base import Backend
from .memory import MEMORY, MemoryBackend
from .sqlite.file import FileBackend
from .sqlite.schema import check_durability

#: ``None``, ``":memory:"``, a file path, a Redis URL, or a ``redis.Redis`` client.
Location = str | os.PathLike[str] | None | Any

#: URL schemes served by Redis; every other string is a SQLite file path.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis(location: Location) -> bool:
    """Whether ``location`` names a Redis server (a URL or a client), not a SQLite store."""
    if location is None or isinstance(location, os.PathLike):
        return False
    return not isinstance(location, str) or location.startswith(REDIS_SCHEMES)


def open_backend(
    location: Location,
    codec: Codec,
    quotas: Quotas | None,
    *,
    timeout: float,
    durability: str,
    prefix: str | None,
    connect: bool = True,
) -> Backend:
    """Open the engine that serves ``location``, writing with ``codec``, under ``quotas``.

    :param connect: Redis only: reach the server now, so that a wrong URL fails
        here; ``False`` leaves it to the first call (the async face).
    :raises ValueError: an option that does not apply to this kind of location.
    :raises ~dash_database.exceptions.DependencyMissingError: Redis without redis-py.
    """
    if not is_redis(location):
        if prefix is not None:
            raise ValueError("prefix applies to Redis only; a SQLite file holds one app's data")
        check_durability(durability)
        if location is not None and os.fspath(location) == MEMORY:
            return MemoryBackend(codec, quotas)
        return FileBackend(location, codec, quotas, timeout=timeout, durability=durability)
    if durability != "normal":
        raise ValueError(
            "durability applies to SQLite only; for Redis set appendonly yes and "
            "appendfsync always on the server"
        )
    try:
        # Imported here: redis is an optional extra.
        from .redis.engine import DEFAULT_PREFIX, RedisBackend
    except ImportError as exc:
        if exc.name is not None and exc.name.startswith("dash_database"):
            raise  # our own module is missing: a broken install, not a missing extra
        raise DependencyMissingError(
            'Redis support needs the redis package: pip install "dash_database[redis]" '
            '(from a clone: pip install ".[redis]")'
        ) from exc
    prefix = DEFAULT_PREFIX if prefix is None else prefix
    return RedisBackend(location, codec, quotas, timeout=timeout, prefix=prefix, connect=connect)
