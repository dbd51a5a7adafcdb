"""Helpers shared by the test suite, in one place: ports, servers, clocks, failing values,
the async face as a sync one, and checks that several test files make.

Fixtures live in ``conftest.py``; everything else a test file imports lives here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import importlib.util
import inspect
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from dash_database import AsyncDashDatabase, DashDatabase, UserValues
from dash_database.backends.locations import POSTGRES_SCHEMES
from dash_database.backends.memory import MemoryBackend
from dash_database.backends.sqlite.file import FileBackend
from dash_database.backends.threaded import ThreadedBackend
from dash_database.serialization import Codec
from dash_database.signing import FRAME

#: Opens a fresh database of the backend under test with these options.
OpenDb = Callable[..., DashDatabase]

#: Signing keys of the tests (never real keys).
KEY = b"k" * 32
OLD_KEY = b"o" * 32
SERIALIZERS = ["pickle", "json"]
#: Stores written by earlier releases.
DATA = Path(__file__).parent / "data"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Clock:
    """A controllable replacement for ``time.time()`` (see the ``clock`` fixture)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class FailsWhilePickling:
    """Pickles as a long list that fails at its end, after chunks or a side file were written."""

    def __reduce__(self) -> tuple[object, ...]:
        return (list, ([b"y" * 4000, *([b"x" * 100] * 50), lambda: None],))


class ReadsWhilePickling:
    """A value whose pickling reads the database."""

    def __init__(self, db: DashDatabase) -> None:
        self.db = db

    def __reduce__(self) -> tuple[Any, ...]:
        return (str, (f"saw {self.db.get_user_value('other', 'k')}",))


class Marker:
    """A pickle that touches a file when it is unpickled: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return pathlib.Path.touch, (self.path,)


def write_with(db: DashDatabase, codec: Codec, user: Any, key: Any, value: Any) -> None:
    """Store ``value`` as a writer using ``codec`` would (no key, another key...)."""
    engine = db._backend
    own, engine.codec = engine.codec, codec
    try:
        engine.set(user, key, value, None)
    finally:
        engine.codec = own


def read_with(db: DashDatabase, codec: Codec, user: Any, key: Any) -> Any:
    """The value as a reader using ``codec`` would read it (no key, another key...)."""
    engine = db._backend
    own, engine.codec = engine.codec, codec
    try:
        return engine.get(user, key, None)[0]
    finally:
        engine.codec = own


def value_for(serializer: str, big: bool = False) -> Any:
    """A value the serializer stores, spanning several chunks (and frames) if ``big``."""
    size = 3 * FRAME + 10 if big else 10
    return {"text": "x" * size} if serializer == "json" else b"x" * size


def large_bodies(db: DashDatabase) -> dict[Any, Any]:
    """Where the engine keeps the bodies of large values, as stored: each side file's inode,
    change time and bytes; each Redis chunk's bytes, by its name within its bucket (a
    rename moves chunks to the new id's bucket); each memory record's chunk tuple; each
    PostgreSQL chunk row's bytes and row id (a rewritten row gets a new one)."""
    engine: Any = db._backend
    if engine.location.startswith(POSTGRES_SCHEMES):
        rows = postgres_rows(engine, "SELECT version, seq, data, ctid::text FROM {}.chunks")
        return {(version, seq): (data, ctid) for version, seq, data, ctid in rows}
    if isinstance(engine, FileBackend):
        folder = Path(engine.files.folder)
        files = sorted(folder.iterdir()) if folder.exists() else []
        return {f.name: (f.stat().st_ino, f.stat().st_mtime_ns, f.read_bytes()) for f in files}
    if isinstance(engine, MemoryBackend):
        records = engine._values.values()
        return {id(chunks): chunks for values in records for _, chunks in values.values()}
    with redis_client(engine) as client:
        keys = client.scan_iter(f"{engine._prefix}*chunk:*")
        return {key.rsplit(b"}:", 1)[-1]: client.get(key) for key in keys}


def postgres_rows(engine: Any, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    """The rows of ``statement`` (its ``{}``: the store's schema) on a PostgreSQL engine's
    database, whichever face's engine it is, on a connection of the test's own."""
    import psycopg

    with psycopg.connect(engine.location, autocommit=True) as conn:
        cursor = conn.execute(statement.format(engine._quoted), args)
        return cursor.fetchall() if cursor.description else []


def redis_client(engine: Any) -> Any:
    """A sync client to a Redis engine's server, whichever face's engine it is (the async
    one's clients belong to event loops)."""
    import redis

    return redis.Redis.from_url(engine.location)


def assert_counters_exact(db: DashDatabase) -> None:
    """The counters (what stats() and inspect.users() read) match a recount of every value."""
    fast, slow = db.inspect.stats(), db.inspect.stats(check=True)
    assert (fast.users, fast.keys, fast.bytes, slow.missing) == (
        slow.users,
        slow.keys,
        slow.bytes,
        0,
    )
    for summary in db.inspect.users():
        sizes = db.inspect.key_sizes(summary.user_id)
        recounted = (len(sizes), sum(size or 0 for size in sizes.values()))
        assert (summary.keys, summary.bytes) == recounted, summary.user_id


def load_redis_store(url: str, name: str, prefixes: dict[str, str]) -> None:
    """Load the Redis store ``tests/data/{name}.json`` (every key of a server, as
    ``tests/data/README.md`` says it was dumped) with each of its ``prefixes`` renamed."""
    import base64
    import json

    import redis

    client = redis.Redis.from_url(url)
    for key, entry in json.loads((DATA / f"{name}.json").read_text()).items():
        name_text = base64.b64decode(key).decode()
        old = next(p for p in prefixes if name_text.startswith(p))
        target = prefixes[old] + name_text[len(old) :]
        value, kind = entry["value"], entry["type"]
        if kind == "hash":
            fields = {base64.b64decode(f): base64.b64decode(v) for f, v in value.items()}
            client.hset(target, mapping=fields)  # type: ignore[arg-type]
        elif kind == "set":
            client.sadd(target, *(base64.b64decode(m) for m in value))
        elif kind == "zset":
            client.zadd(target, {base64.b64decode(m): score for m, score in value})
        else:
            client.set(target, base64.b64decode(value))
        if entry["ttl"] > 0:
            client.expire(target, entry["ttl"])


class RedisServer:
    """A real redis-server on 127.0.0.1 and a free port, in its own folder.

    :param folder: where its AOF files go.
    :param options: extra ``redis-server`` options, e.g. ``["--appendonly", "yes"]``.
    """

    def __init__(self, folder: Path, options: list[str] | None = None) -> None:
        self.folder = folder
        self.options = options or ["--appendonly", "no"]
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        """Start the server and wait until it answers."""
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--dir", str(self.folder), *self.options]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return self
            except OSError:
                time.sleep(0.05)  # a real server starting up: nothing to patch
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def pause(self, paused: bool) -> None:
        """Stop the server's process where it is (SIGSTOP), as a stalled host would; or let it
        go on (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


class PostgresServer:
    """A private PostgreSQL cluster, made by ``initdb`` in a folder of its own and served on
    127.0.0.1 and a free port (run as the ``postgres`` user when the tests run as root,
    since PostgreSQL refuses to run as root). Made for tests: no fsync.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="dash_database-postgres-"))
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.folder, "postgres")

    def _run(self, *command: str) -> None:
        program = str(Path(postgres_bin()) / command[0])
        subprocess.run([*self._as, program, *command[1:]], check=True, capture_output=True)

    def start(self) -> PostgresServer:
        """Make the cluster on first start, start the server, and wait until it answers."""
        data = self.folder / "data"
        if not data.exists():
            self._run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=400"
        )
        log = str(self.folder / "log")
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", log, "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``"immediate"``: as a crash would, with no shutdown checkpoint)."""
        data = str(self.folder / "data")
        with suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", data, "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


class PgBouncer:
    """PgBouncer in transaction pooling on 127.0.0.1 and a free port, in front of a
    PostgreSQL server, with two server connections, so that one client's transactions run
    on different ones (run as the ``postgres`` user under root, as PgBouncer asks).

    :param server_url: the PostgreSQL server's URL (``postgres`` user, no password).
    """

    def __init__(self, server_url: str) -> None:
        host_port = server_url.split("@")[1].split("/")[0]
        host, port = host_port.split(":")
        self.folder = Path(tempfile.mkdtemp(prefix="dash_database-pgbouncer-"))
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        (self.folder / "users.txt").write_text('"postgres" ""\n')
        (self.folder / "pgbouncer.ini").write_text(
            f"[databases]\npostgres = host={host} port={port} dbname=postgres\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = trust\nauth_file = {self.folder}/users.txt\n"
            "pool_mode = transaction\ndefault_pool_size = 2\n"
        )
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if as_postgres:
            shutil.chown(self.folder, "postgres")
        command = [*as_postgres, "pgbouncer", str(self.folder / "pgbouncer.ini")]
        self.process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
                return
            time.sleep(0.05)  # a real server starting up: nothing to patch
        raise RuntimeError(f"pgbouncer did not start on port {self.port}")

    def stop(self) -> None:
        """Stop it and delete its folder."""
        self.process.terminate()
        self.process.wait(timeout=20)
        shutil.rmtree(self.folder, ignore_errors=True)


def postgres_bin() -> str:
    """The folder of the PostgreSQL server's programs (Debian keeps them off ``PATH``), or
    ``""`` if none is installed."""
    found = shutil.which("initdb")
    if found:
        return str(Path(found).resolve().parent)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts)
    return str(versions[-1].parent) if versions else ""


def require_postgres_server() -> None:
    """Skip without PostgreSQL or psycopg locally; fail under CI."""
    require(bool(postgres_bin()), "PostgreSQL is missing (apt-get install postgresql)")
    require(importlib.util.find_spec("psycopg_pool") is not None, "psycopg is missing")


class ReplyDroppingProxy:
    """A TCP proxy on 127.0.0.1 in front of a Redis server that, once :meth:`arm` is called,
    forwards the next request naming ``command`` but drops its reply and closes the
    client's connection: the server applied the write, the client never heard back.

    :param port: the server's port.
    :param command: the request to drop the reply of.
    """

    def __init__(self, port: int, command: bytes = b"EVALSHA") -> None:
        self._target, self._command = port, command
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"
        self._armed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        """Drop the reply of the next request naming ``command``."""
        self._armed.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(("127.0.0.1", self._target))
            dropping = threading.Event()
            threading.Thread(target=self._up, args=(client, server, dropping), daemon=True).start()
            threading.Thread(
                target=self._down, args=(server, client, dropping), daemon=True
            ).start()

    def _up(self, client: socket.socket, server: socket.socket, dropping: threading.Event) -> None:
        with suppress(OSError):
            while data := client.recv(65536):
                if self._armed.is_set() and self._command in data:
                    self._armed.clear()
                    dropping.set()
                server.sendall(data)

    def _down(
        self, server: socket.socket, client: socket.socket, dropping: threading.Event
    ) -> None:
        with suppress(OSError):
            while data := server.recv(65536):
                if dropping.is_set():
                    client.close()
                    server.close()
                    return
                client.sendall(data)

    def close(self) -> None:
        """Stop accepting connections."""
        self._listener.close()


def require(available: bool, message: str) -> None:
    """Skip when something a test needs is missing locally; fail under CI, which must have it."""
    if not available:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must install it and run this test")
        pytest.skip(message)


class Volume:
    """A real file system of its own (a tmpfs of ``megabytes``), mounted at ``folder`` for a
    test: the faults of a full disk or a read-only volume, made for real. Needs root.

    :param folder: where to mount it (made if missing).
    """

    def __init__(self, folder: Path, megabytes: int = 16) -> None:
        self.folder, self.megabytes = folder, megabytes

    def __enter__(self) -> Volume:
        self.folder.mkdir(exist_ok=True)
        options = f"size={self.megabytes}m,mode=0700"
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.folder)],
            capture_output=True,
            text=True,
        )
        require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.strip()}")
        return self

    def remount(self, read_only: bool) -> None:
        """Make the volume read-only, or writable again."""
        mode = "ro" if read_only else "rw"
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.folder)], check=True)

    def __exit__(self, *exc_info: object) -> None:
        subprocess.run(["umount", "-l", str(self.folder)], check=False)


def require_redis_server() -> None:
    """Skip without redis-server locally; fail under CI."""
    require(
        shutil.which("redis-server") is not None,
        "redis-server is missing (apt-get install redis-server)",
    )


def run_now(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` to its end from sync code, on a new event loop (as Flask runs each
    async view). From code that an event loop is running (a func of update_user_value, a
    value's pickling), on a thread of its own, in the caller's context."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(context.run, asyncio.run, coroutine).result()


class _Awaiting:
    """Calls an async object's coroutine methods from sync code (see :func:`run_now`);
    other attributes pass through."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if inspect.iscoroutinefunction(attr):
            return lambda *args, **kwargs: run_now(attr(*args, **kwargs))
        return attr


class EngineAsSync(_Awaiting):
    """An async engine with the sync engine's API, for tests that reach into the engine:
    settings (``chunk_size``) reach it, and raw values cross as lists of pieces."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_target":
            super().__setattr__(name, value)
        else:
            setattr(self._target, name, value)

    def read_raw(self, user_id: Any, key_name: Any) -> tuple[bytes, Iterator[bytes]] | None:
        """The raw value, its pieces read at once."""

        async def read() -> tuple[bytes, list[bytes]] | None:
            raw = await self._target.read_raw(user_id, key_name)
            return None if raw is None else (raw[0], [piece async for piece in raw[1]])

        raw = run_now(read())
        return None if raw is None else (raw[0], iter(raw[1]))

    def write_raw(self, user_id: Any, key_name: Any, head: bytes, pieces: Iterable[bytes]) -> None:
        """Store a raw value from pieces in a list."""

        async def each() -> AsyncIterator[bytes]:
            for piece in pieces:
                yield piece

        run_now(self._target.write_raw(user_id, key_name, head, each()))


class AsyncFaceAsSync(_Awaiting):
    """An :class:`AsyncDashDatabase` with the sync API, so the contract suite runs on it unchanged.

    :param db: the async face under test.
    """

    def __init__(self, db: AsyncDashDatabase) -> None:
        super().__init__(db)
        self.inspect = _Awaiting(db.inspect)
        # Engine-level tweaks (chunk_size) and the activity cache reach the face's own;
        # a SQLite engine is the one under the thread.
        backend = db._backend
        if isinstance(backend, ThreadedBackend):
            self._backend: Any = backend.engine
        else:
            self._backend = EngineAsSync(backend)
        self._activity = db._activity

    def user(self, user_id: Any) -> UserValues:
        """The sync view, over the async face's methods."""
        view = self._target.user(user_id)  # checks the id as the async face does
        return UserValues(self, view.user_id)

    @property
    def closed(self) -> bool:
        """Whether the async face is closed."""
        return bool(self._target.closed)

    def __enter__(self) -> AsyncFaceAsSync:
        run_now(self._target.__aenter__())
        return self

    def __exit__(self, *exc_info: object) -> None:
        run_now(self._target.__aexit__(*exc_info))

    def __repr__(self) -> str:
        return repr(self._target)


def open_face(face: str, location: Any, **options: Any) -> DashDatabase:
    """A database through the sync face, or through the async face driven from sync code
    (each call on an event loop of its own: see :class:`AsyncFaceAsSync`)."""
    if face == "async":
        return AsyncFaceAsSync(AsyncDashDatabase(location, **options))  # type: ignore[return-value]
    return DashDatabase(location, **options)


def server_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The URL of the server that ``backend`` needs, started if not yet; ``""``: none."""
    for engine in ("redis", "postgres"):
        if backend.endswith(engine):
            return str(request.getfixturevalue(f"{engine}_url"))
    return ""


def open_backend(name: str, tmp_path: Path, server_url: str = "", **options: Any) -> DashDatabase:
    """Open a fresh, empty database of the named backend (``server_url``: of its server)."""
    # A prefix (schema) per database keeps tests apart on one server.
    if name.endswith("redis"):
        options = {"prefix": f"test-{uuid.uuid4().hex}:", **options}
    if name.endswith("postgres"):
        options = {"schema": f"test_{uuid.uuid4().hex}", **options}
    if name.startswith("async-"):
        location = {
            "sqlite-memory": ":memory:",
            "sqlite-path": str(tmp_path / "store.sqlite3"),
            "redis": server_url,
            "postgres": server_url,
        }
        db = AsyncDashDatabase(location[name.removeprefix("async-")], **options)
        return AsyncFaceAsSync(db)  # type: ignore[return-value]
    if name in ("redis", "postgres"):
        return DashDatabase(server_url, **options)
    if name == "sqlite-memory":
        return DashDatabase(":memory:", **options)
    if name == "sqlite-path":
        return DashDatabase(tmp_path / "store.sqlite3", **options)
    raise ValueError(name)


def load_example(relative: str, name: str) -> Any:
    """Import ``examples/<relative>`` as a fresh module called ``name`` (it reads its
    settings from the environment when imported)."""
    path = Path(__file__).resolve().parent.parent / "examples" / relative
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would: Dash pages look their module up there
    spec.loader.exec_module(module)
    return module


def callback_body(output: str, inputs: list[Any], state: list[Any]) -> dict[str, Any]:
    """The JSON a Dash browser POSTs to run one callback.

    :param output: ``"component.property"`` of the single output.
    :param inputs: ``(id, property, value)`` of each input; the first one changed.
    :param state: ``(id, property, value)`` of each state.
    """
    component, prop = output.split(".")
    return {
        "output": output,
        "outputs": {"id": component, "property": prop},
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
        "changedPropIds": [f"{inputs[0][0]}.{inputs[0][1]}"],
    }
