"""The PostgreSQL engine beyond the contract suite: locations, schemas, processes, faults.

The contract suite runs unchanged over PostgreSQL on both faces (``conftest.BACKENDS``);
quotas racing 8 processes and counters after SIGKILLed writers are in
``test_counters.py``, copies in ``test_copy.py``, the CLI in ``test_cli.py``.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg_pool
import pytest

from dash_database import AsyncDashDatabase, DashDatabase
from dash_database.exceptions import DeserializationError, StorageError

from helpers import (
    PgBouncer,
    PostgresServer,
    assert_counters_exact,
    postgres_rows,
    require,
    require_postgres_server,
)


def _schema() -> str:
    return f"test_{uuid.uuid4().hex}"


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, which it may stop and start."""
    require_postgres_server()
    server = PostgresServer().start()
    yield server
    server.remove()


def test_postgres_and_postgresql_urls_open_one_store(postgres_url: str) -> None:
    """``postgres://`` (Heroku's form) and ``postgresql://`` reach the same store."""
    schema = _schema()
    with DashDatabase(postgres_url, schema=schema) as db:
        db.store_user_value("alice", "theme", "dark")
    short = postgres_url.replace("postgresql://", "postgres://")
    with DashDatabase(short, schema=schema) as db:
        assert db.get_user_value("alice", "theme") == "dark"
        assert repr(db).startswith("DashDatabase('postgres://postgres@127.0.0.1:")


def test_a_store_lives_in_its_own_schema_and_schemas_share_nothing(postgres_url: str) -> None:
    """The default schema is ``dash_database``, never ``public``; another schema is another
    store in the same database."""
    with DashDatabase(postgres_url) as default, DashDatabase(postgres_url, schema="app_b") as b:
        default.store_user_value("u", "k", 1)
        assert b.get_user_value("u", "k", None) is None
        b.store_user_value("u", "k", 2)
        assert default.get_user_value("u", "k") == 1
        default.delete_all_user_values("u")
    with psycopg.connect(postgres_url) as conn:
        schemas = conn.execute(
            "SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_name = "
            "'values'"
        ).fetchall()
        public = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert {"dash_database", "app_b"} <= {row[0] for row in schemas}
    assert public == (0,)


@pytest.mark.parametrize("schema", ["public", "pg_catalog", "App", "1st", "a-b", "a" * 64])
def test_schema_names_that_are_not_plain_or_are_postgres_own_are_refused(
    schema: str, postgres_url: str
) -> None:
    """A schema must be a plain lowercase name of its own; the error names the argument."""
    with pytest.raises(ValueError, match="schema"):
        DashDatabase(postgres_url, schema=schema)


def test_options_of_other_engines_are_refused_by_name(postgres_url: str, tmp_path: Any) -> None:
    """``prefix`` and ``durability`` on PostgreSQL, ``schema`` elsewhere: a ValueError."""
    with pytest.raises(ValueError, match="prefix"):
        DashDatabase(postgres_url, prefix="x:")
    with pytest.raises(ValueError, match="durability"):
        AsyncDashDatabase(postgres_url, durability="full")
    with pytest.raises(ValueError, match="schema applies to PostgreSQL"):
        DashDatabase(tmp_path / "store.sqlite3", schema="x")


def test_a_pool_given_by_the_app_is_used_and_left_open(postgres_url: str) -> None:
    """A psycopg_pool pool of autocommit connections serves the store; close leaves it open."""
    schema = _schema()
    kwargs = {"autocommit": True, "prepare_threshold": None}  # as behind PgBouncer
    with psycopg_pool.ConnectionPool(postgres_url, kwargs=kwargs, min_size=1) as pool:
        with DashDatabase(pool, schema=schema) as db:
            db.store_user_value("u", "k", [1, 2])
            assert db.get_user_value("u", "k") == [1, 2]
            assert repr(db).startswith("DashDatabase('postgresql://postgres@127.0.0.1:")
        assert not pool.closed

        async def main() -> Any:
            async_pool = psycopg_pool.AsyncConnectionPool(
                postgres_url, kwargs=kwargs, min_size=1, open=False
            )
            async with async_pool:
                async with AsyncDashDatabase(async_pool, schema=schema) as adb:
                    value = await adb.get_user_value("u", "k")
                assert not async_pool.closed
            # The async face given the sync face's pool makes a pool of its own.
            async with AsyncDashDatabase(pool, schema=schema) as adb:
                return value, await adb.get_user_value("u", "k")

        assert asyncio.run(main()) == ([1, 2], [1, 2])


def test_a_pool_without_autocommit_is_refused_with_the_fix(postgres_url: str) -> None:
    """Its connections would keep a transaction open; the error shows the argument to add."""
    with (
        psycopg_pool.ConnectionPool(postgres_url, min_size=1) as pool,
        pytest.raises(ValueError, match=re.escape('kwargs={"autocommit": True}')),
    ):
        DashDatabase(pool, schema=_schema())


def test_a_schema_made_by_a_newer_version_is_refused(postgres_url: str) -> None:
    """Tables of a later version are never written by this one: the error says to upgrade."""
    schema = _schema()
    DashDatabase(postgres_url, schema=schema).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"UPDATE {schema}.meta SET value = '99' WHERE name = 'version'")
    with pytest.raises(StorageError, match=r"newer dash_database.*upgrade"):
        DashDatabase(postgres_url, schema=schema)


def _open_at_once(url: str, schema: str) -> str:
    """In a forked child: wait for the others, then open the store and write once."""
    _open_at_once.barrier.wait()  # type: ignore[attr-defined]
    try:
        with DashDatabase(url, schema=schema) as db:
            db.store_user_value("u", str(multiprocessing.current_process().pid), 1)
    except Exception as exc:  # reported to the test, which asserts on it
        return repr(exc)
    return "ok"


def test_processes_opening_a_new_store_at_once_make_it_once(postgres_url: str) -> None:
    """Four processes opening a store that does not exist yet all work; none fails."""
    schema = _schema()
    context = multiprocessing.get_context("fork")
    _open_at_once.barrier = context.Barrier(4)  # type: ignore[attr-defined]
    pool = context.Pool(4)  # forked after: each child inherits the barrier
    try:
        results = pool.starmap(_open_at_once, [(postgres_url, schema)] * 4)
    finally:
        pool.close()
        pool.join()
    assert results == ["ok"] * 4
    with DashDatabase(postgres_url, schema=schema) as db:
        assert db.user_stats("u").keys == 4


ACKNOWLEDGING = """
import sys
from dash_database import DashDatabase
db = DashDatabase(sys.argv[1], schema=sys.argv[2])
db._backend.chunk_size = 4096
for index in range(10**9):
    db.store_user_value(sys.argv[3], index, b"v" * (5000 if index % 4 == 0 else 10))
    print(index, flush=True)
"""


def test_four_writers_sigkilled_lose_nothing_acknowledged(postgres_url: str) -> None:
    """Every write that returned reads back after its writer was SIGKILLed mid-load."""
    schema = _schema()
    DashDatabase(postgres_url, schema=schema).close()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", ACKNOWLEDGING, postgres_url, schema, f"w{n}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    acknowledged = {}
    for n, writer in enumerate(writers):
        assert writer.stdout is not None
        for _ in range(50 * (n + 1)):
            acknowledged[f"w{n}"] = int(writer.stdout.readline())
    for writer in writers:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    with DashDatabase(postgres_url, schema=schema) as db:
        for user, last in acknowledged.items():
            keys = set(db.list_stored_user_keys(user))
            assert set(range(last + 1)) <= keys, user
            assert db.get_user_value(user, last) in (b"v" * 5000, b"v" * 10)
        assert db._backend.collect_garbage() == 0  # a killed transaction left no chunk
        assert_counters_exact(db)


def test_a_server_restarted_mid_load_fails_calls_with_storage_errors_then_works(
    own_server: PostgresServer,
) -> None:
    """While the server restarts, every error a writer sees is a StorageError; the same
    object works again afterwards."""
    db = DashDatabase(own_server.url, schema=_schema(), timeout=5)
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(thread: int) -> None:
        index = 0
        while not stop.is_set():
            index += 1
            try:
                db.store_user_value(thread, index, index)
            except Exception as exc:  # kept for the assertion below
                errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while db.inspect.stats().keys < 200:
        time.sleep(0.01)  # a real load on a real server: nothing to patch
    own_server.stop("fast")
    own_server.start()
    stop.set()
    for thread in threads:
        thread.join()
    assert errors, "the restart went unnoticed: the test did not test it"
    assert all(isinstance(exc, StorageError) for exc in errors), errors[:3]
    db.store_user_value("after", "k", 1)
    assert db.get_user_value("after", "k") == 1
    db.close()


@pytest.mark.parametrize("face", ["sync", "async"])
def test_while_the_server_is_down_each_call_fails_within_its_timeout(
    face: str, own_server: PostgresServer
) -> None:
    """A store that worked, its server stopped: each call raises a StorageError within about
    ``timeout``, not after a longer wait for a connection."""
    url, schema = own_server.url, _schema()

    async def calls() -> list[float]:
        db = AsyncDashDatabase(url, schema=schema, timeout=2)
        await db.store_user_value("u", "k", 1)
        own_server.stop("immediate")
        took = []
        for _ in range(3):
            start = time.monotonic()
            with pytest.raises(StorageError):
                await db.store_user_value("u", "k", 1)
            took.append(time.monotonic() - start)
        return took

    if face == "async":
        took = asyncio.run(calls())
    else:
        db = DashDatabase(url, schema=schema, timeout=2)
        db.store_user_value("u", "k", 1)
        own_server.stop("immediate")
        took = []
        for _ in range(3):
            start = time.monotonic()
            with pytest.raises(StorageError):
                db.store_user_value("u", "k", 1)
            took.append(time.monotonic() - start)
    assert max(took) < 3.5, took


def test_a_value_of_1_1_gb_is_streamed_in_pieces(postgres_url: str) -> None:
    """A 1.1 GB value is written and read back whole, the client never holding a second copy
    of it: writing peaks at a few chunks, reading at the value and a few chunks."""
    value = b"\x5a" * (1_100 * 1024 * 1024)
    with DashDatabase(postgres_url, schema=_schema()) as db:
        tracemalloc.start()
        try:
            db.store_user_value("big", "blob", value)
            written_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            back = db.get_user_value("big", "blob")
            read_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert back == value
        chunk = db._backend.chunk_size
        assert written_peak < 4 * chunk
        assert read_peak < len(value) + 4 * chunk
        assert db.user_stats("big").bytes > len(value)


def test_a_record_naming_chunks_it_cannot_have_is_refused_without_following_it(
    postgres_url: str,
) -> None:
    """A forged record (a count past any value's) raises DeserializationError at once."""
    with DashDatabase(postgres_url, schema=_schema()) as db:
        db._backend.chunk_size = 1024
        db.store_user_value("u", "k", b"x" * 5000)
        engine = db._backend
        postgres_rows(
            engine,
            "UPDATE {}.values SET record = substring(record FROM 1 FOR length(record) - 2) "
            "|| '99999'::bytea",
        )
        with pytest.raises(DeserializationError, match="cannot have made"):
            db.get_user_value("u", "k")
        db.delete_user_value("u", "k")  # a damaged value is still deleted
        assert db._backend.collect_garbage() == 0  # its chunks went with it


def test_chunks_that_no_row_names_are_collected(postgres_url: str) -> None:
    """Chunks left by a change made by hand are removed by collect_garbage, and only they."""
    with DashDatabase(postgres_url, schema=_schema()) as db:
        db._backend.chunk_size = 1024
        db.store_user_value("u", "kept", b"x" * 5000)
        postgres_rows(
            db._backend,
            "INSERT INTO {}.chunks VALUES ('00000000-0000-0000-0000-000000000001', 0, 'x')",
        )
        assert db._backend.collect_garbage() == 1
        assert db.get_user_value("u", "kept") == b"x" * 5000


def test_behind_pgbouncer_in_transaction_pooling_a_pool_without_prepared_statements_works(
    postgres_url: str,
) -> None:
    """Through PgBouncer's transaction pooling (two server connections, four threads), a pool
    made as the README says keeps every guarantee; a URL, whose connections prepare
    statements, fails with the fix in its message."""
    require(
        shutil.which("pgbouncer") is not None, "pgbouncer is missing (apt-get install pgbouncer)"
    )
    bouncer = PgBouncer(postgres_url)
    try:
        kwargs = {"autocommit": True, "prepare_threshold": None}
        with psycopg_pool.ConnectionPool(bouncer.url, kwargs=kwargs, min_size=4) as pool:
            db = DashDatabase(pool, schema=_schema(), max_keys_per_user=102)

            def work(thread: int) -> None:
                for index in range(100):
                    db.store_user_value(thread, index, index)
                    assert db.get_user_value(thread, index) == index
                    db.update_user_value(thread, "n", lambda n: n + 1, 0)
                db.rename_user(thread, f"renamed{thread}")

            threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert [db.get_user_value(f"renamed{n}", "n") for n in range(4)] == [100] * 4
            assert_counters_exact(db)
            db.close()
        errors: list[BaseException] = []
        by_url = DashDatabase(bouncer.url, schema=_schema())

        def write(thread: int) -> None:
            try:
                for index in range(100):
                    by_url.store_user_value(thread, index, index)
            except StorageError as exc:  # kept for the assertion below
                errors.append(exc)

        writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        assert errors, "PgBouncer let prepared statements through: the test tested nothing"
        assert "prepare_threshold" in str(errors[0])
        by_url.close()
    finally:
        bouncer.stop()
