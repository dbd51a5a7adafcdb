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
from .postgres.schema import DEFAULT_SCHEMA
from .sqlite.file import FileBackend
from .sqlite.schema import check_durability

#: ``None``, ``":memory:"``, a file path, a Redis or PostgreSQL URL, a ``redis.Redis``
#: client, or a psycopg pool.
Location = str | os.PathLike[str] | None | Any

#: The start of every key of a Redis store, unless ``prefix`` is given.
DEFAULT_PREFIX = "dash_database:"
#: URL schemes served by Redis; every other string is a SQLite file path.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
#: URL schemes served by PostgreSQL.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
#: Every URL scheme a store may be at; every other string is a SQLite file path.
SCHEMES = REDIS_SCHEMES + POSTGRES_SCHEMES


def is_postgres(location: Location) -> bool:
    """Whether ``location`` names a PostgreSQL database (a URL or a psycopg pool)."""
    if isinstance(location, str):
        return location.startswith(POSTGRES_SCHEMES)
    return type(location).__module__.split(".")[0] == "psycopg_pool"


def is_redis(location: Location) -> bool:
    """Whether ``location`` names a Redis server (a URL or a client), not a SQLite store."""
    if location is None or isinstance(location, os.PathLike) or is_postgres(location):
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
    schema: str | None,
) -> Backend:
    """Open the engine that serves ``location``, writing with ``codec``, under ``quotas``;
    a server is reached here, so that a wrong URL fails at once.

    :raises ValueError: an option that does not apply to this kind of location.
    :raises ~dash_database.exceptions.DependencyMissingError: Redis without redis-py, or
        PostgreSQL without psycopg.
    :raises ~dash_database.exceptions.ConnectionFailedError: the server cannot be reached.
    """
    if is_postgres(location):
        postgres = server_module("postgres", "engine")
        schema = postgres_schema(schema, durability, prefix)
        database = postgres.PostgresBackend(location, codec, quotas, timeout=timeout, schema=schema)
        database.open()
        return cast(Backend, database)
    if schema is not None:
        raise ValueError("schema applies to PostgreSQL only")
    if not is_redis(location):
        return open_sqlite(location, codec, quotas, timeout, durability, prefix)
    engine = server_module("redis", "engine")
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


def postgres_schema(schema: str | None, durability: str, prefix: str | None) -> str:
    """The schema of a PostgreSQL store.

    :raises ValueError: an option of another engine.
    """
    if durability != "normal" or prefix is not None:
        raise ValueError(
            "durability and prefix apply to SQLite and Redis; a PostgreSQL store commits "
            "as the server's synchronous_commit says, in a schema of its own (schema=)"
        )
    return DEFAULT_SCHEMA if schema is None else schema


#: What each server engine needs installed: the extra, and the package it brings.
_EXTRAS = {"redis": "redis", "postgres": "psycopg"}


def server_module(engine: str, name: str) -> Any:
    """The module ``name`` of a server's engine (``"redis"`` or ``"postgres"``), imported
    now: their client libraries are optional extras.

    :raises ~dash_database.exceptions.DependencyMissingError: the client is not installed.
    """
    try:
        return importlib.import_module(f"{__package__}.{engine}.{name}")
    except ImportError as exc:
        if exc.name is not None and exc.name.startswith("dash_database"):
            raise  # our own module is missing: a broken install, not a missing extra
        raise DependencyMissingError(
            f"{engine.capitalize()} support needs the {_EXTRAS[engine]} package: pip install "
            f'"dash_database[{engine}]" (from a clone: pip install ".[{engine}]")'
        ) from exc
