"""What both faces' PostgreSQL servers say of a location: its name, and why it is refused."""

from __future__ import annotations

from typing import Any

from psycopg.conninfo import conninfo_to_dict

#: The error for a location of the wrong type; ``{}``: the type's name.
WRONG_TARGET = (
    "db_location must be None, ':memory:', a file path, a redis:// or postgresql:// URL, "
    "a redis.Redis client or a psycopg_pool.ConnectionPool, not {}"
)
#: The error for a pool given by the app whose connections are not in autocommit.
NOT_AUTOCOMMIT = (
    "the psycopg pool given as db_location must make autocommit connections: "
    'ConnectionPool(conninfo, kwargs={"autocommit": True})'
)


def conninfo(pool: Any) -> str:
    """The connection string of a pool given by the app (psycopg takes a function too)."""
    info = pool.conninfo
    return str(info() if callable(info) else info)


def describe(pool: Any) -> str:
    """Where a pool given by the app connects, never with its password."""
    params = conninfo_to_dict(conninfo(pool))
    user = f"{params['user']}@" if "user" in params else ""
    host, port = params.get("host", "localhost"), params.get("port", 5432)
    return f"postgresql://{user}{host}:{port}/{params.get('dbname', '')}"
