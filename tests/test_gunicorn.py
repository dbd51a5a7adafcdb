"""The example app under gunicorn -w 4 on one shared file: every user reads its own value."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dash_database import DashDatabase, new_session_id

from helpers import callback_body

pytest.importorskip("dash", reason="the [dash] extra is not installed")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WORKERS = 4


def require_gunicorn() -> None:
    """Skip without gunicorn locally; fail under CI, which installs it."""
    if shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None:
        if os.environ.get("CI") == "true":
            pytest.fail("gunicorn is not installed; CI must run the gunicorn test")
        pytest.skip("gunicorn is not installed (pip install gunicorn)")


@contextlib.contextmanager
def run_gunicorn(app: str, folder: Path, env: dict[str, str], *options: str) -> Iterator[str]:
    """``gunicorn -w 4 app`` from ``folder`` on a free port of 127.0.0.1, with ``env`` added
    to the environment and ``options`` to the command; yields its URL once it answers."""
    require_gunicorn()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        *("-w", str(WORKERS), "-b", f"127.0.0.1:{port}", "--chdir", str(folder)),
        *options,
        app,
    ]
    process = subprocess.Popen(
        command, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_dash-layout", timeout=5):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"gunicorn did not start: {process.communicate()[1][-2000:]}")
            time.sleep(0.2)  # a real server starting: nothing to patch
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """examples/gunicorn_app.py under gunicorn -w 4; yields its URL, database and access log."""
    database, access_log = tmp_path / "shared.sqlite", tmp_path / "access.log"
    options = (
        # The worker's pid (as "<pid>") in each access-log line shows which worker answered.
        *("--access-logfile", str(access_log), "--access-logformat", "%(p)s %(r)s %(s)s"),
        # An idle worker may win every accept(); retiring each worker after 12
        # requests forces the 50 requests over at least 5 worker processes.
        *("--max-requests", "12"),
    )
    env = {"DASH_DATABASE_PATH": str(database)}
    with run_gunicorn("gunicorn_app:server", EXAMPLES, env, *options) as url:
        yield url, database, access_log


def callback(url: str, output: str, inputs: list[Any], state: list[Any]) -> str:
    """POST one Dash callback request on a new connection; return the output's children."""
    component, prop = output.split(".")
    body = callback_body(output, inputs, state)
    request = urllib.request.Request(
        f"{url}/_dash-update-component",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Connection": "close"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["response"][component][prop])


def callback_lines(access_log: Path) -> list[str]:
    """The access-log lines of callback requests."""
    text = access_log.read_text() if access_log.exists() else ""
    return [line for line in text.splitlines() if "_dash-update-component" in line]


def test_fifty_callbacks_across_four_workers(gunicorn: tuple[str, Path, Path]) -> None:
    """10 users each store once and read back 4 times (50 requests); all on one shared file."""
    url, database, access_log = gunicorn
    users = {new_session_id(): f"value of user {n}" for n in range(10)}
    session = "dash-database-session"

    def store(session_id: str) -> str:
        return callback(
            url,
            "store-output.children",
            [("store-button", "n_clicks", 1)],
            [("value-input", "value", users[session_id]), (session, "data", session_id)],
        )

    def read(session_id: str) -> str:
        return callback(
            url,
            "retrieve-output.children",
            [("retrieve-button", "n_clicks", 1)],
            [(session, "data", session_id)],
        )

    # Concurrent requests, as from many browsers: a sync worker busy with one
    # request cannot accept the next, so they spread over the workers.
    with ThreadPoolExecutor(max_workers=2 * WORKERS) as pool:
        stored = list(pool.map(store, users))
        read_back = list(pool.map(read, [*users] * 4))
    assert stored == [f"Stored “{value}” for this session." for value in users.values()]
    assert read_back == [f"This session holds “{value}”." for value in users.values()] * 4

    # A worker logs a request just after sending its response: wait for the last lines.
    deadline = time.monotonic() + 30
    while len(lines := callback_lines(access_log)) < 50 and time.monotonic() < deadline:
        time.sleep(0.1)  # a real server writing its log: nothing to patch
    assert len(lines) == 50
    assert all(line.endswith(" 200") for line in lines)
    pids = {re.findall(r"^<(\d+)>", line)[0] for line in lines}
    assert len(pids) >= 5, "the requests did not spread over the workers"
    with DashDatabase(database, serializer="data") as db:  # as the example app opens it
        assert sorted(db.list_users()) == sorted(users)
        for session_id, value in users.items():
            assert db.get_user_value(session_id, "value") == value
