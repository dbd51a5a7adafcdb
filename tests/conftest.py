"""Fixtures shared by the test suite: one ``db`` per backend location."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dash_database import AsyncDashDatabase, DashDatabase, UserValues

#: Every backend the contract suite runs over, by name; "async-" ones through the async face.
BACKENDS = [
    "sqlite-temp",
    "sqlite-memory",
    "sqlite-path",
    "redis",
    "async-sqlite-memory",
    "async-sqlite-path",
    "async-redis",
]

OpenDb = Callable[..., DashDatabase]


class _Awaiting:
    """Calls an async object's coroutine methods from sync code, each on a new event loop
    (as Flask runs each async view); other attributes pass through."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if inspect.iscoroutinefunction(attr):
            return lambda *args, **kwargs: asyncio.run(attr(*args, **kwargs))
        return attr


class AsyncFaceAsSync(_Awaiting):
    """An :class:`AsyncDashDatabase` with the sync API, so the contract suite runs on it unchanged.

    :param db: the async face under test.
    """

    def __init__(self, db: AsyncDashDatabase) -> None:
        super().__init__(db)
        self.inspect = _Awaiting(db.inspect)
        # Engine-level tweaks (chunk_size) reach the engine under the async face.
        self._backend = db.sync._backend

    def user(self, user_id: Any) -> UserValues:
        """The sync view, over the async face's methods."""
        view = self._target.user(user_id)  # checks the id as the async face does
        return UserValues(self, view.user_id)  # type: ignore[arg-type]

    @property
    def closed(self) -> bool:
        """Whether the async face is closed."""
        return bool(self._target.closed)

    def __enter__(self) -> AsyncFaceAsSync:
        asyncio.run(self._target.__aenter__())
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run(self._target.__aexit__(*exc_info))

    def __repr__(self) -> str:
        return repr(self._target)


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


class RedisServer:
    """A real redis-server on 127.0.0.1 and a free port, in its own folder.

    :param folder: where its AOF files go.
    :param options: extra ``redis-server`` options, e.g. ``["--appendonly", "yes"]``.
    """

    def __init__(self, folder: Path, options: list[str] | None = None) -> None:
        self.folder = folder
        self.options = options or ["--appendonly", "no"]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
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

    def stop(self) -> None:
        """Stop the server if it runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


def require(available: bool, message: str) -> None:
    """Skip when something a test needs is missing locally; fail under CI, which must have it."""
    if not available:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must install it and run this test")
        pytest.skip(message)


def require_redis_server() -> None:
    """Skip without redis-server locally; fail under CI."""
    require(
        shutil.which("redis-server") is not None,
        "redis-server is missing (apt-get install redis-server)",
    )


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a redis-server started for this test session."""
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


def open_backend(name: str, tmp_path: Path, redis_url: str = "", **options: Any) -> DashDatabase:
    """Open a fresh, empty database of the named backend."""
    if name.startswith("async-"):
        location = {"sqlite-memory": ":memory:", "sqlite-path": str(tmp_path / "store.sqlite3")}
        engine = name.removeprefix("async-")
        if engine == "redis":
            db = AsyncDashDatabase(redis_url, prefix=f"test-{uuid.uuid4().hex}:", **options)
        else:
            db = AsyncDashDatabase(location[engine], **options)
        return AsyncFaceAsSync(db)  # type: ignore[return-value]
    if name == "redis":
        # A prefix per database keeps tests apart on one server.
        return DashDatabase(redis_url, prefix=f"test-{uuid.uuid4().hex}:", **options)
    if name == "sqlite-temp":
        return DashDatabase(None, **options)
    if name == "sqlite-memory":
        return DashDatabase(":memory:", **options)
    if name == "sqlite-path":
        return DashDatabase(tmp_path / "store.sqlite3", **options)
    raise ValueError(name)


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    return str(request.param)


@pytest.fixture
def open_db(backend_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[OpenDb]:
    """A factory of fresh databases of the backend under test, closed afterwards."""
    opened: list[DashDatabase] = []
    counter = iter(range(1_000_000))
    url = request.getfixturevalue("redis_url") if backend_name.endswith("redis") else ""

    def factory(**options: Any) -> DashDatabase:
        folder = tmp_path / f"db{next(counter)}"
        folder.mkdir()
        db = open_backend(backend_name, folder, url, **options)
        opened.append(db)
        return db

    yield factory
    for db in opened:
        db.close()


@pytest.fixture
def db(open_db: OpenDb) -> DashDatabase:
    """A fresh, empty database of the backend under test."""
    return open_db()


@pytest.fixture
def file_db(tmp_path: Path) -> Iterator[DashDatabase]:
    """A database in a SQLite file, for tests about files and processes."""
    with DashDatabase(tmp_path / "shared.sqlite3") as db:
        yield db


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


@pytest.fixture
def new_browser(tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Start independent headless Chromiums: each has its own profile, like another user."""
    from browser import require_chromium, start_chromium

    require_chromium()
    started: list[Any] = []

    def start() -> Any:
        driver = start_chromium(tmp_path / f"profile{len(started)}")
        started.append(driver)
        return driver

    yield start
    for driver in started:
        driver.quit()
