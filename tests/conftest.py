"""Fixtures shared by the test suite: one ``db`` per backend location."""

from __future__ import annotations

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

from dash_database import DashDatabase

#: Every backend the contract suite runs over, by name.
BACKENDS = ["sqlite-temp", "sqlite-memory", "sqlite-path", "redis"]

OpenDb = Callable[..., DashDatabase]


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


def require_redis_server() -> None:
    """Skip without redis-server locally; fail under CI, which must install it."""
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI must run the Redis tests")
        pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a redis-server started for this test session."""
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


def open_backend(name: str, tmp_path: Path, redis_url: str = "", **options: Any) -> DashDatabase:
    """Open a fresh, empty database of the named backend."""
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
    url = request.getfixturevalue("redis_url") if backend_name == "redis" else ""

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
