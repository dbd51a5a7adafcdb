"""Faults that managed Redis servers meet: a restart that lost the data, and a server that
evicts keys when full; each on a real redis-server on 127.0.0.1 that the test configures."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest

from dash_database import DashDatabase
from dash_database.exceptions import DeserializationError, QuotaExceededError, StorageError

from helpers import Clock, RedisServer, redis_client, require_redis_server


def test_a_restart_without_persistence_keeps_expiry_and_quotas(
    tmp_path: Path, clock: Clock
) -> None:
    """After the server restarts empty, a user this process saw lately and writes again still
    expires when left idle, and a quota still holds."""
    require_redis_server()
    server = RedisServer(tmp_path).start()
    try:
        with DashDatabase(server.url, expire_after=3600, max_keys_per_user=2) as db:
            db.store_user_value("u", "a", 1)  # this process now knows "u" as active
            server.stop()
            server.start()  # the same port, no data: a container restarted
            db.store_user_value("u", "b", 2)  # "u" is active, as far as this process knows
            assert db.inspect.last_activity("u") == clock.now  # the write put it back
            db.store_user_value("v", "a", 1)
            db.store_user_value("v", "b", 2)
            with pytest.raises(QuotaExceededError):
                db.store_user_value("v", "c", 3)
            clock.advance(2 * 3600)
            assert db.purge_expired() == 2
            assert db.list_users() == []
    finally:
        server.stop()


def test_a_server_that_evicts_never_passes_off_a_lost_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Under allkeys-lru, with more values than memory: opening warns and names the fix; each
    read returns the value stored or raises DeserializationError, and a read returns nothing
    only for a key the user no longer lists; once eviction is off, repair makes check find the
    store healthy."""
    require_redis_server()
    server = RedisServer(tmp_path, ["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"])
    server.start()
    stored: dict[tuple[int, str], Any] = {}
    refused: list[str] = []
    try:
        with caplog.at_level(logging.WARNING, logger="dash_database"):
            db = DashDatabase(server.url)
        warnings = [r.getMessage() for r in caplog.records]
        assert any("maxmemory-policy is allkeys-lru" in w and "noeviction" in w for w in warnings)
        db._backend.chunk_size = 16 * 1024
        rng = random.Random(0)
        for n in range(400):  # about 8 MB in all, with chunked values among small ones
            user, key = n % 40, f"k{n}"
            value = rng.randbytes(60_000) if n % 4 == 0 else {"n": n, "pad": "x" * 10_000}
            try:
                db.store_user_value(user, key, value)
            except StorageError as exc:  # a chunk evicted before its record was written
                refused.append(str(exc))
                continue
            stored[(user, key)] = value
        assert all("nothing was stored" in message for message in refused)
        outcomes = {"same": 0, "damaged": 0, "gone": 0}
        for (user, key), value in stored.items():
            try:
                found = db.get_user_value(user, key)
            except DeserializationError:
                outcomes["damaged"] += 1
                continue
            if found is None:
                assert key not in db.list_stored_user_keys(user)
                outcomes["gone"] += 1
            else:
                assert found == value
                outcomes["same"] += 1
        assert outcomes["same"]
        assert outcomes["gone"] + outcomes["damaged"]  # it did evict
        with redis_client(db._backend) as admin:  # the fix: no eviction, and room to write
            admin.config_set("maxmemory-policy", "noeviction")
            admin.config_set("maxmemory", "0")
        db.repair()
        assert db.inspect.check().healthy
        db.close()
    finally:
        server.stop()
