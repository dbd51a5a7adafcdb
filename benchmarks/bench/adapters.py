"""The contenders, each used the way its own users use it, behind one small interface.

:data:`ADAPTERS` is the table the runner picks from by name. The limit rows
are bare ``sqlite3`` (a connection per thread, WAL, a ``(user, key)`` primary
key, as issue #22 defines it) and redis-py alone (a hash per user): what a
store on that engine costs before it does anything of its own. A stricter
sqlite3 row, the same table ``WITHOUT ROWID`` (one b-tree instead of a table
and its index), is shown beside it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class Engine(Protocol):
    """What each contender offers the workloads."""

    def store(self, user: int, key: int, value: Any) -> None: ...
    def get(self, user: int, key: int) -> Any: ...
    def list(self, user: int) -> list[Any]: ...
    def delete_user(self, user: int) -> None: ...
    def close(self) -> None: ...


class Ours:
    """dash_database, through its public API."""

    def __init__(self, location: Any, **options: Any) -> None:
        # Imported here: in the 1.0 worker, dash_database is the 1.0 package.
        from dash_database import DashDatabase

        self.db = DashDatabase(location, **options)

    def store(self, user: int, key: int, value: Any) -> None:
        self.db.store_user_value(user, key, value)

    def get(self, user: int, key: int) -> Any:
        return self.db.get_user_value(user, key)

    def list(self, user: int) -> list[Any]:
        return list(self.db.list_stored_user_keys(user))

    def delete_user(self, user: int) -> None:
        self.db.delete_all_user_values(user)

    def close(self) -> None:
        self.db.close()


class OneZero(Ours):
    """dash-database 1.0 (run in its own virtual environment; ``--with-1.0``)."""

    def close(self) -> None:
        self.db.db.close()


class BareSqlite:
    """The sqlite3 module alone: a connection per thread, WAL, a ``(user, key)`` key.

    :param without_rowid: make the table one b-tree (``WITHOUT ROWID``).
    """

    def __init__(self, path: str, without_rowid: bool = False) -> None:
        self.path = path
        self.local = threading.local()
        conn = self._conn()
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")  # once: it stays in the file
        conn.execute(
            "CREATE TABLE IF NOT EXISTS t (user INTEGER, key INTEGER, value BLOB, "
            "PRIMARY KEY (user, key))" + (" WITHOUT ROWID" if without_rowid else "")
        )

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    def store(self, user: int, key: int, value: Any) -> None:
        self._conn().execute("REPLACE INTO t VALUES (?, ?, ?)", (user, key, value))

    def get(self, user: int, key: int) -> Any:
        rows = self._conn().execute("SELECT value FROM t WHERE user = ? AND key = ?", (user, key))
        return rows.fetchall()

    def list(self, user: int) -> list[Any]:
        return [row[0] for row in self._conn().execute("SELECT key FROM t WHERE user = ?", (user,))]

    def delete_user(self, user: int) -> None:
        self._conn().execute("DELETE FROM t WHERE user = ?", (user,))

    def close(self) -> None:
        self._conn().close()


class RawRedis:
    """redis-py alone: one hash per user, ``HSET``/``HGET``."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    def store(self, user: int, key: int, value: Any) -> None:
        self.client.hset(f"{self.prefix}{user}", str(key), value)

    def get(self, user: int, key: int) -> Any:
        return self.client.hget(f"{self.prefix}{user}", str(key))

    def list(self, user: int) -> list[Any]:
        return list(self.client.hkeys(f"{self.prefix}{user}"))

    def delete_user(self, user: int) -> None:
        self.client.delete(f"{self.prefix}{user}")

    def close(self) -> None:
        self.client.close()


class DiskCacheKeys:
    """diskcache with a key per value, ``(user, key)``, as its docs show: listing or deleting
    one user must scan every key (diskcache has no prefix query)."""

    def __init__(self, folder: str) -> None:
        import diskcache

        self.cache = diskcache.Cache(folder)

    def store(self, user: int, key: int, value: Any) -> None:
        self.cache[(user, key)] = value

    def get(self, user: int, key: int) -> Any:
        return self.cache.get((user, key))

    def list(self, user: int) -> list[Any]:
        return [k for u, k in self.cache.iterkeys() if u == user]

    def delete_user(self, user: int) -> None:
        for key in self.list(user):
            del self.cache[(user, key)]

    def close(self) -> None:
        self.cache.close()


class DiskCacheDicts(DiskCacheKeys):
    """diskcache with one dict per user, updated in a transaction: what its users do to list
    and delete a user cheaply; each write rewrites the user's dict."""

    def store(self, user: int, key: int, value: Any) -> None:
        with self.cache.transact():
            values = self.cache.get(user, {})
            values[key] = value
            self.cache[user] = values

    def get(self, user: int, key: int) -> Any:
        return self.cache.get(user, {}).get(key)

    def list(self, user: int) -> list[Any]:
        return list(self.cache.get(user, {}))

    def delete_user(self, user: int) -> None:
        self.cache.delete(user)


@dataclass(frozen=True)
class Adapter:
    """One row of the tables: its label, how to open it, and what location it takes.

    :param where: ``"file"`` (a SQLite path), ``"folder"``, ``"memory"`` or ``"redis"``.
    :param limit: a limit row: what the engine costs without any library.
    """

    label: str
    open: Callable[[str], Engine]
    where: str
    limit: bool = False


def _redis(options: dict[str, Any]) -> Callable[[str], Engine]:
    def open_(location: str) -> Engine:
        url, _, prefix = location.partition("#")
        return Ours(url, prefix=prefix, **options)

    return open_


ADAPTERS: dict[str, Adapter] = {
    "file": Adapter("dash_database, SQLite file", Ours, "file"),
    "memory": Adapter("dash_database, memory", lambda _: Ours(":memory:"), "memory"),
    "sqlite3": Adapter("bare sqlite3 (limit)", BareSqlite, "file", limit=True),
    "sqlite3-wr": Adapter(
        "bare sqlite3, WITHOUT ROWID (stricter limit)",
        lambda path: BareSqlite(path, without_rowid=True),
        "file",
        limit=True,
    ),
    "diskcache-keys": Adapter("diskcache, a key per value", DiskCacheKeys, "folder"),
    "diskcache-dicts": Adapter("diskcache, a dict per user", DiskCacheDicts, "folder"),
    "redis": Adapter("dash_database, Redis", _redis({}), "redis"),
    "redis-py": Adapter(
        "redis-py alone (limit)",
        lambda location: RawRedis(*location.split("#", 1)),
        "redis",
        limit=True,
    ),
    "1.0": Adapter("dash-database 1.0, file", OneZero, "file"),
}
