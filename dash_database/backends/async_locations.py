"""The async face's engine for a location: Redis and PostgreSQL natively, SQLite through a
thread."""

from __future__ import annotations

from typing import cast

from ..quotas import Quotas
from ..serialization import Codec
from .async_base import AsyncBackend
from .locations import (
    Location,
    is_postgres,
    is_redis,
    open_sqlite,
    postgres_schema,
    redis_prefix,
    server_module,
)
from .threaded import ThreadedBackend


def async_open_backend(
    location: Location,
    codec: Codec,
    quotas: Quotas | None,
    *,
    timeout: float,
    durability: str,
    prefix: str | None,
    schema: str | None,
) -> AsyncBackend:
    """Open the async engine that serves ``location`` (see
    :func:`~.locations.open_backend`); a server is reached on the first call.

    :raises ValueError: an option that does not apply to this kind of location.
    :raises ~dash_database.exceptions.DependencyMissingError: Redis without redis-py, or
        PostgreSQL without psycopg.
    """
    if is_postgres(location):
        postgres = server_module("postgres", "async_engine")
        schema = postgres_schema(schema, durability, prefix)
        database = postgres.AsyncPostgresBackend(
            location, codec, quotas, timeout=timeout, schema=schema
        )
        return cast(AsyncBackend, database)
    if schema is not None:
        raise ValueError("schema applies to PostgreSQL only")
    if not is_redis(location):
        return ThreadedBackend(open_sqlite(location, codec, quotas, timeout, durability, prefix))
    engine = server_module("redis", "async_engine")
    prefix = redis_prefix(prefix, durability)
    backend = engine.AsyncRedisBackend(location, codec, quotas, timeout=timeout, prefix=prefix)
    return cast(AsyncBackend, backend)
