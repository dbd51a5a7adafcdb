"""Dash's shared storage: one conformance suite, from Dash's documented semantics, run over
Dash's own DiskcacheSharedStorage and LocalSharedStorage (to show that the suite is right)
and over ours on a SQLite file and on Redis.

Expiry is waited for in real time here, not on a patched clock: Dash's backends keep their
own clocks (Local's in an owner thread, diskcache's in SQLite), which no patch reaches.
The waits are kept short, and the tests that make them few.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

dash_storage = pytest.importorskip(
    "dash._shared_storage", reason="shared storage is Dash 4.5's", exc_type=ImportError
)

from dash_database import DashDatabase, cli  # noqa: E402
from dash_database.dash import SharedStorage  # noqa: E402

from helpers import require_redis_server  # noqa: E402

BUFFER = 8
BACKENDS = ["dash-diskcache", "dash-local", "file", "redis"]
#: A script run in another process: opens the backend named by argv, publishes 20
#: messages to "t" and sets "from-child".
CHILD = """
import sys, uuid
from dash._shared_storage import DiskcacheSharedStorage, LocalSharedStorage
from dash_database.dash import SharedStorage
kind, where = sys.argv[1], sys.argv[2]
if kind == "dash-diskcache":
    store = DiskcacheSharedStorage(directory=where, buffer_size=40)
elif kind == "dash-local":
    store = LocalSharedStorage(namespace=where, buffer_size=40)
else:
    options = {"prefix": sys.argv[3]} if len(sys.argv) > 3 else {}
    store = SharedStorage(where, buffer_size=40, **options)
store.start()
for n in range(20):
    store.publish("t", {"n": n})
store.set("from-child", [1, 2, 3])
store.close()
"""

Opener = Callable[..., Any]


@pytest.fixture(params=BACKENDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the backend of the parameter (all instances share one store), with the
    arguments a second process passes to :data:`CHILD`; closes them all at the end."""
    kind: str = request.param
    opened: list[Any] = []
    where, extra = str(tmp_path / "store"), []
    if kind == "dash-local":
        where = f"test-{uuid.uuid4().hex[:12]}"
    elif kind == "file":
        where = str(tmp_path / "store.sqlite3")
    elif kind == "redis":
        require_redis_server()
        where, extra = request.getfixturevalue("redis_url"), [f"test-{uuid.uuid4().hex}:"]

    def open_(buffer_size: int = BUFFER) -> Any:
        if kind == "dash-diskcache":
            store = dash_storage.DiskcacheSharedStorage(directory=where, buffer_size=buffer_size)
        elif kind == "dash-local":
            store = dash_storage.LocalSharedStorage(namespace=where, buffer_size=buffer_size)
        else:
            options = {"prefix": extra[0]} if extra else {}
            store = SharedStorage(where, buffer_size=buffer_size, **options)
        store.start()
        opened.append(store)
        return store

    open_.kind, open_.child_args = kind, [kind, where, *extra]  # type: ignore[attr-defined]
    yield open_
    for store in reversed(opened):
        store.close()


def test_values_are_set_read_replaced_and_deleted(opener: Opener) -> None:
    """get returns the default for a missing key, the value once set, the new one once
    replaced, and the default again once deleted."""
    store = opener()
    assert store.get("k") is None
    assert store.get("k", "default") == "default"
    store.set("k", {"a": [1, 2.5, None, True, "x"]})
    assert store.get("k") == {"a": [1, 2.5, None, True, "x"]}
    store.set("k", "replaced")
    assert store.get("k") == "replaced"
    store.delete("k")
    store.delete("k")  # deleting a missing key is no error
    assert store.get("k", "gone") == "gone"


def test_a_value_with_a_ttl_expires_and_one_without_stays(opener: Opener) -> None:
    """A value set with ttl=0.3 reads back at once and is gone after it; one without stays."""
    store = opener()
    store.set("short", 1, ttl=0.3)
    store.set("long", 2)
    assert store.get("short") == 1
    time.sleep(0.5)
    assert store.get("short", "expired") == "expired"
    assert store.get("long") == 2


def test_a_subscription_gets_what_is_published_after_it_in_order(opener: Opener) -> None:
    """A subscription starts at the head: it gets the messages published after it, with
    sequence numbers that follow each other, and poll(0) then returns nothing at once."""
    store = opener()
    store.publish("t", "before")
    subscription = store.subscribe("t")
    for n in range(5):
        store.publish("t", n)
    pairs = subscription.poll(0)
    assert [message for _, message in pairs] == [0, 1, 2, 3, 4]
    sequences = [seq for seq, _ in pairs]
    assert sequences == list(range(sequences[0], sequences[0] + 5))
    started = time.monotonic()
    assert subscription.poll(0) == []
    assert time.monotonic() - started < 0.25  # never waits (the next check waits 50 ms)
    subscription.close()


def test_a_subscription_replays_from_a_sequence(opener: Opener) -> None:
    """replay_from=N replays what came after sequence N, from the buffer."""
    store = opener()
    for n in range(1, 6):
        store.publish("t", n)
    with store.subscribe("t", replay_from=2) as subscription:
        assert subscription.poll(0) == [(3, 3), (4, 4), (5, 5)]


def test_a_reader_past_the_buffer_gets_a_gap(opener: Opener) -> None:
    """A reader further behind than the buffer gets SharedStorageGap, not a silent hole."""
    store = opener()
    subscription = store.subscribe("t")
    for n in range(BUFFER + 3):
        store.publish("t", n)
    with pytest.raises(dash_storage.SharedStorageGap):
        subscription.poll(0)


def test_a_cursor_past_the_head_is_a_gap(opener: Opener) -> None:
    """A cursor from before the topic started over (past its head) is a gap, not a wait."""
    store = opener()
    store.publish("t", 1)
    with pytest.raises(dash_storage.SharedStorageGap):
        store.subscribe("t", replay_from=50).poll(0)


def test_poll_waits_for_a_message_published_meanwhile(opener: Opener) -> None:
    """poll(timeout) returns as soon as another thread publishes."""
    store = opener()
    subscription = store.subscribe("t")
    timer = threading.Timer(0.1, store.publish, ("t", "late"))
    timer.start()
    try:
        assert [message for _, message in subscription.poll(10)] == ["late"]
    finally:
        timer.join()


def test_iteration_gets_every_message_until_closed(opener: Opener) -> None:
    """Iterating a subscription yields each message in order; closing it ends the loop."""
    store = opener()
    subscription = store.subscribe("t")
    got: list[Any] = []

    def consume() -> None:
        for message in subscription:
            got.append(message)
            if len(got) == 5:
                subscription.close()

    reader = threading.Thread(target=consume)
    reader.start()
    for n in range(5):
        store.publish("t", n)
    reader.join(10)
    assert not reader.is_alive()
    assert got == [0, 1, 2, 3, 4]


def test_a_topic_with_a_ttl_goes_unless_read_and_starts_over(opener: Opener) -> None:
    """A topic published with ttl=1 outlives its ttl while a reader polls it; left alone
    it goes, so an old cursor gets a gap, and the next publish starts it over."""
    store = opener()
    for name in ("kept", "left"):
        store.publish(name, "first", ttl=1.0)
    reader = store.subscribe("kept", replay_from=0)
    assert reader.poll(0) == [(1, "first")]
    for _ in range(10):  # 3 seconds of a reader polling "kept"
        time.sleep(0.3)
        assert reader.poll(0) == []
    with pytest.raises(dash_storage.SharedStorageGap):
        store.subscribe("left", replay_from=1).poll(0)
    store.publish("left", "again", ttl=1.0)
    assert store.subscribe("left", replay_from=0).poll(0) == [(1, "again")]
    store.publish("kept", "second")
    assert reader.poll(0) == [(2, "second")]


def test_the_async_variants_read_write_and_stream(opener: Opener) -> None:
    """aset, aget, adelete and apublish behave as their sync twins, and async iteration
    gets each message in order."""
    store = opener()

    async def scenario() -> list[Any]:
        await store.aset("k", [1, 2])
        assert await store.aget("k") == [1, 2]
        await store.adelete("k")
        assert await store.aget("k", "gone") == "gone"
        subscription = store.subscribe("t")

        async def publish() -> None:
            for n in range(3):
                await store.apublish("t", n)
                await asyncio.sleep(0.01)

        publisher = asyncio.create_task(publish())
        got = []
        async for message in subscription:
            got.append(message)
            if len(got) == 3:
                subscription.close()
        await publisher
        return got

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == [0, 1, 2]


def test_another_process_publishes_and_sets_for_this_one(opener: Opener) -> None:
    """Messages a second process publishes reach this one's subscription whole and in
    order, and its values read here."""
    store = opener(buffer_size=40)
    subscription = store.subscribe("t")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *opener.child_args],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    got: list[Any] = []
    deadline = time.monotonic() + 10
    while len(got) < 20 and time.monotonic() < deadline:
        got += [message for _, message in subscription.poll(0.5)]
    assert got == [{"n": n} for n in range(20)]
    assert store.get("from-child") == [1, 2, 3]


@pytest.mark.parametrize("opener", ["dash-diskcache", "file", "redis"], indirect=True)
def test_values_that_are_not_json_compatible_are_refused(opener: Opener) -> None:
    """set and publish refuse an object that JSON cannot hold with a TypeError, and store
    nothing. (Dash's LocalSharedStorage keeps such an object in its owner process as it
    is: it encodes only what crosses its socket.)"""
    store = opener()
    with pytest.raises(TypeError):
        store.set("k", object())
    with pytest.raises(TypeError):
        store.publish("t", object())
    assert store.get("k") is None


@pytest.mark.parametrize("engine", ["file", "redis"])
def test_shared_storage_lives_apart_from_the_users_values(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Values and topics of shared storage in a store are no user's: list_users, quotas,
    purges and copy never see them, and the CLI's stats counts them apart."""
    if engine == "file":
        location: Any = str(tmp_path / "store.sqlite3")
        options: dict[str, Any] = {}
    else:
        require_redis_server()
        location = request.getfixturevalue("redis_url")
        options = {"prefix": f"test-{uuid.uuid4().hex}:"}
    with DashDatabase(location, max_total_bytes=100, expire_after=60, **options) as db:
        shared = SharedStorage(db)
        shared.set("state", "x" * 500)
        shared.publish("t", "y" * 500)
        db.store_user_value("alice", "k", "v")  # the quota counts alice's bytes only
        assert db.list_users() == ["alice"]
        assert db.purge_expired() == 0
        with DashDatabase(tmp_path / "copy.sqlite3") as target:
            db.copy_to(target)
            assert target.list_users() == ["alice"]
            assert SharedStorage(target).get("state") is None
        out = io.StringIO()
        assert cli.main([str(location), *_prefix_args(options), "stats", "--json"], out=out) == 0
        stats = json.loads(out.getvalue())
        assert (stats["users"], stats["shared_values"], stats["shared_topics"]) == (1, 1, 1)
        assert shared.get("state") == "x" * 500
        shared.close()


def _prefix_args(options: dict[str, Any]) -> list[str]:
    return ["--prefix", options["prefix"]] if "prefix" in options else []


def test_wrong_arguments_are_refused_naming_them(tmp_path: Path) -> None:
    """A buffer out of range, a ttl that is not a positive number, a key that is not a str,
    options beside an open store and an open store in memory each raise, naming the fault."""
    with pytest.raises(ValueError, match="buffer_size must be an int from 1 to 999"):
        SharedStorage(None, buffer_size=1000)
    store = SharedStorage(":memory:")  # a private temporary file
    for ttl in (0, -1.0, float("inf"), "5"):
        with pytest.raises(ValueError, match="ttl must be None or a finite number"):
            store.set("k", 1, ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(dash_storage.SharedStorageError, match="ttl of a topic"):
        store.publish("t", 1, ttl=0.5)
    with pytest.raises(TypeError, match="key must be a str, not int"):
        store.get(1)  # type: ignore[arg-type]
    store.close()
    options = pytest.raises(ValueError, match=r"options \['timeout'\] apply to a location")
    with DashDatabase(tmp_path / "s.sqlite3") as db, options:
        SharedStorage(db, timeout=3)
    with DashDatabase(":memory:") as db, pytest.raises(TypeError, match="SQLite file or Redis"):
        SharedStorage(db)


def test_an_async_store_and_a_sync_one_share_one_shared_storage(tmp_path: Path) -> None:
    """SharedStorage over an AsyncDashDatabase uses its store: what one sets, the other reads."""
    from dash_database import AsyncDashDatabase

    path = tmp_path / "s.sqlite3"
    with DashDatabase(path) as db:
        SharedStorage(db).set("k", "from the sync face")
        store = AsyncDashDatabase(path)
        assert SharedStorage(store).get("k") == "from the sync face"
        asyncio.run(store.close())


@pytest.mark.parametrize("engine", ["file", "redis"])
def test_many_async_readers_on_one_loop_wait_together(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Fifty async subscriptions on one event loop each get the message published to its
    topic; while they wait, Redis sees a few blocked reads, not a poll per reader."""
    if engine == "file":
        store = SharedStorage(tmp_path / "s.sqlite3")
    else:
        require_redis_server()
        url = request.getfixturevalue("redis_url")
        store = SharedStorage(url, prefix=f"test-{uuid.uuid4().hex}:")
    topics = [f"topic {n}" for n in range(50)]

    async def scenario() -> tuple[list[Any], int]:
        subscriptions = [store.subscribe(topic) for topic in topics]

        async def first(subscription: Any) -> Any:
            async for message in subscription:
                subscription.close()
                return message
            return None

        readers = [asyncio.create_task(first(s)) for s in subscriptions]
        await asyncio.sleep(0.3)  # every reader waiting
        calls = _script_calls(store) if engine == "redis" else 0
        await asyncio.sleep(1.0)  # a second of fifty idle readers
        calls = _script_calls(store) - calls if engine == "redis" else 0
        for topic in topics:
            await store.apublish(topic, topic)
        return await asyncio.wait_for(asyncio.gather(*readers), 10), calls

    got, idle_calls = asyncio.run(scenario())
    assert got == topics
    assert idle_calls < 400  # each reader reads again twice a second; polling: 25,000
    store.close()


def _script_calls(store: Any) -> int:
    """How many scripts the Redis server of ``store`` ran so far."""
    client = store._engine._server.client()
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
