"""How much shared storage a store holds, for operators: without Dash, creating nothing."""

from __future__ import annotations

from typing import Any

from ..backends.sqlite.file import FileBackend
from . import redis, sqlite


def counts(backend: Any) -> tuple[int, int] | None:
    """The live values and topics of shared storage in ``backend``'s store; ``None`` where
    it holds none (or cannot: a store in memory)."""
    if isinstance(backend, FileBackend):
        return sqlite.counts(backend._conn)
    server = getattr(backend, "_server", None)
    return None if server is None else redis.counts(server, backend._prefix)
