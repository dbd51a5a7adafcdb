"""Which engine serves a location, and the one function that opens it."""

from __future__ import annotations

import importlib
import os
from typing import Any, cast

from ..exceptions import DependencyMissingError
from ..quotas import Quotas
from ..serialization import Codec
from .base import Backend
from .memory import MEMORY, MemoryBackend
from .sqlite.file import FileBackend
from .sqlite.schema import check_durability

#: ``None``, ``":memory:"``, a file path, a Redis URL, or a ``redis.Redis`` client.
Location = str | os.PathLike[str] | None | Any

#: The start of every key of a Redis store, unless ``prefix`` is given.
DEFAULT_PREFIX = "dash_database:"
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
) -> Backend:
    """Open the engine that serves ``location``, writing with ``codec``, under ``quotas``;
    a Redis server is reached here, so that a wrong URL fails at once.

    :raises ValueError: an option that does not apply to this kind of location.
    :raises ~dash_database.exceptions.DependencyMissingError: Redis without redis-py.
    :raises ~dash_database.exceptions.ConnectionFailedError: the Redis server cannot be
        reached.
    """
    if not is_redis(location):
        return open_sqlite(location, codec, quotas, timeout, durability, prefix)
    engine = redis_module("engine")
    prefix = redis_prefix(prefix, durability)
    backend = engine.RedisBackend(location, codec, quotas, timeout=timeout, prefix=prefix)
    backend.open()
    return cast(Backend, backend)


def open_sqlite(
    location: Location,
    codec: Codec,
    quotas: Quotas | None,
    timeout: float,
    durability: str,
    prefix: str | None,
) -> Backend:
    """Open the SQLite engine (a file, or this process's memory) at ``location``.

    :raises ValueError: a Redis option.
    """
    if prefix is not None:
        raise ValueError("prefix applies to Redis only; a SQLite file holds one app's data")
    check_durability(durability)
    if location is not None and os.fspath(location) == MEMORY:
        return MemoryBackend(codec, quotas)
    return FileBackend(location, codec, quotas, timeout=timeout, durability=durability)


def redis_prefix(prefix: str | None, durability: str) -> str:
    """The key prefix of a Redis store.

    :raises ValueError: a SQLite option.
    """
    if durability != "normal":
        raise ValueError(
            "durability applies to SQLite only; for Redis set appendonly yes and "
            "appendfsync always on the server"
        )
    return DEFAULT_PREFIX if prefix is None else prefix


def redis_module(name: str) -> Any:
    """The module ``name`` of the Redis engine, imported now: redis is an optional extra.

    :raises ~dash_database.exceptions.DependencyMissingError: redis-py is not installed.
    """
    try:
        return importlib.import_module(f"{__package__}.redis.{name}")
    except ImportError as exc:
        if exc.name is not None and exc.name.startswith("dash_database"):
            raise  # our own module is missing: a broken install, not a missing extra
        raise DependencyMissingError(
            'Redis support needs the redis package: pip install "dash_database[redis]" '
            '(from a clone: pip install ".[redis]")'
        ) from exc
