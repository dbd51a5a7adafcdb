"""How much shared storage a store holds, for operators: without Dash, creating nothing."""

from __future__ import annotations

from typing import Any

from ..backends.sqlite.file import FileBackend
from . import redis, sqlite


def counts(backend: Any) -> tuple[int, int] | None:
    """The live values and topics of shared storage in ``backend``'s store; ``None`` where
    it holds none (or cannot: a store in memory or on PostgreSQL)."""
    if isinstance(backend, FileBackend):
        return sqlite.counts(backend._conn)
    prefix = getattr(backend, "_prefix", None)  # a Redis engine's
    return None if prefix is None else redis.counts(backend._server, prefix)
