"""Fixtures shared by the test suite: one ``db`` per engine, a clock, a redis-server, browsers.

Helpers that are not fixtures live in ``helpers.py``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# The tests import the installed package, never the source tree beside them, so that a
# module left out of the distribution fails here as it would for users. (`pip install -e`
# installs a link back to the source, for development.) This runs before any test module,
# or helpers.py, imports dash_database.
ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [entry for entry in sys.path if Path(entry or os.getcwd()).resolve() != ROOT]
# Each SQLite store keeps disk for deletes on a full disk, 24 MiB by default; the suite
# opens hundreds of stores, so they keep 64 KiB (child processes inherit it). The tests
# of a full disk set the default back.
os.environ["DASH_DATABASE_RESERVE_BYTES"] = str(64 * 1024)

import dash_database.clock  # noqa: E402
from dash_database import DashDatabase  # noqa: E402

from helpers import (  # noqa: E402
    Clock,
    OpenDb,
    PostgresServer,
    RedisServer,
    open_backend,
    require_postgres_server,
    require_redis_server,
    server_url,
)

#: The engines the contract suite runs over, each once through either face: a SQLite
#: file, this process's memory, Redis and PostgreSQL (which the async face reaches lazily).
BACKENDS = [
    "sqlite-path",
    "sqlite-memory",
    "redis",
    "postgres",
    "async-sqlite-path",
    "async-sqlite-memory",
    "async-redis",
    "async-postgres",
]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Under CI, a skipped test fails: CI installs every server, browser and extra, so a skip
    there means a test that did not run (a missing import, a missing redis-server)."""
    report = yield
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where every test must run: {report.longrepr}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """Under CI, a module skipped at import (pytest.importorskip) fails too."""
    report = yield
    if os.environ.get("CI") == "true" and report.skipped:
        report.outcome = "failed"
    return report


_DESELECTED = pytest.StashKey[str]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With DASH_DATABASE_DASH_MATRIX=1 (CI's run of the Dash helpers on each Dash version
    we claim), a test of a Dash feature newer than the installed Dash is deselected, and
    the run says so; otherwise every test runs (and, under CI, must pass)."""
    if os.environ.get("DASH_DATABASE_DASH_MATRIX") != "1":
        return
    from importlib.metadata import version

    from packaging.version import Version

    installed = Version(version("dash"))
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("needs_dash")
        too_new = marker is not None and Version(marker.args[0]) > installed
        (dropped if too_new else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        features = sorted({m.args[1] for i in dropped if (m := i.get_closest_marker("needs_dash"))})
        config.stash[_DESELECTED] = (
            f"Dash {installed} lacks {', '.join(features)}: {len(dropped)} tests deselected"
        )


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    """Say which tests a run on an older Dash left out, and why."""
    return [config.stash[_DESELECTED]] if _DESELECTED in config.stash else []


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The clock every database in the test reads."""
    fake = Clock()
    monkeypatch.setattr(dash_database.clock, "now", fake)
    return fake


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a redis-server started for this test session."""
    require_redis_server()
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL server started for this test session."""
    require_postgres_server()
    server = PostgresServer().start()
    yield server.url
    server.remove()


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    """The name of the backend under test."""
    return str(request.param)


@pytest.fixture
def open_db(backend_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[OpenDb]:
    """A factory of fresh databases of the backend under test, closed afterwards."""
    opened: list[DashDatabase] = []
    counter = iter(range(1_000_000))
    url = server_url(backend_name, request)

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
