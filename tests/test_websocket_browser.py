"""Callbacks over WebSocket (Dash 4.2+, FastAPI and Quart) in Chromium: sessions apart, kept
across a reload, healed, rotated at login and ended at logout, with no HTTP callback."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dash", reason="the [dash] extra is not installed")

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from test_backends_browser import (
    STORE,
    keeps_a_session_and_a_tab_apart,
    refused_lines,
    reload,
    require_backend,
    say,
    stored_id,
)

from dash_database import AsyncDashDatabase, DashDatabase
from dash_database.sessions import check_session_id

from browser import wait_for_text
from dash_apps import serve, websocket_app

pytestmark = pytest.mark.needs_dash("4.2", "WebSocket callbacks")


def click(driver: WebDriver, button: str, expected: str) -> str:
    """Click a button; return the status that answers it."""
    driver.find_element(By.ID, button).click()
    return wait_for_text(driver, "status", expected)


@pytest.mark.parametrize("callback", ["sync", "async"])
@pytest.mark.parametrize("backend", ["fastapi", "quart"])
def test_websocket_callbacks_keep_sessions_rotate_and_heal(
    backend: str,
    callback: str,
    tmp_path: Path,
    new_browser: Callable[[], WebDriver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Tabs apart, a reload keeps the session, login moves it, logout ends it, a bad id heals,
    and every callback went over the WebSocket."""
    require_backend(backend)
    db = DashDatabase(tmp_path / "sessions.sqlite3")
    app = websocket_app(backend, db, callback)
    browser = new_browser()
    paths: list[str] = []
    with serve(app, paths) as url, caplog.at_level(logging.WARNING, logger="dash_database"):
        keeps_a_session_and_a_tab_apart(browser, url)

        guest = stored_id(browser, "sessionStorage")
        assert click(browser, "login", "Logged in") == "Logged in."
        member = stored_id(browser, "sessionStorage")
        assert member != guest
        assert db.list_stored_user_keys(guest) == []
        assert db.get_user_value(member, "name") == "alice"
        assert reload(browser) == "Hello None! (last time: alice)"  # the same values, new id
        assert click(browser, "logout", "Logged out") == "Logged out."
        assert db.list_stored_user_keys(member) == []
        assert reload(browser) == "Hello None! (last time: None)"

        browser.execute_script(f"sessionStorage.setItem('{STORE}', JSON.stringify('abc'))")
        browser.get(url)
        wait_for_text(browser, "name", "")
        healed = stored_id(browser, "sessionStorage")
        assert check_session_id(healed) == healed
        assert say(browser, "bob") == "Hello bob! (last time: None)"
    assert paths, "the page was served"
    assert not [path for path in paths if "_dash-update-component" in path]
    lines = refused_lines(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "refused a callback from 127.0.0.1 (WebSocket)" in lines[0].getMessage()
    assert "abc" not in db.list_users()
    db.close()


def _refused_on_a_loop(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` of the sync face, failing when called on a thread that runs an event loop."""

    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return method(*args, **kwargs)
        on_loop.append(method.__name__)
        raise AssertionError(f"the sync face's {method.__name__} was called on the loop")

    return guarded


on_loop: list[str] = []


@pytest.mark.parametrize("websocket", [False, True], ids=["http", "websocket"])
def test_an_async_login_and_logout_make_no_sync_store_call_on_the_loop(
    websocket: bool,
    redis_url: str,
    new_browser: Callable[[], WebDriver],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On FastAPI, async callbacks that call rotate_session and end_session unawaited (as 2.3
    apps do) move and delete the values before answering, with the sync face never on the loop."""
    require_backend("fastapi")
    on_loop.clear()
    for name, method in vars(DashDatabase).items():
        if callable(method) and not name.startswith("__"):
            monkeypatch.setattr(DashDatabase, name, _refused_on_a_loop(method))
    db = AsyncDashDatabase(redis_url, prefix=f"test-{uuid.uuid4().hex}:")
    app = websocket_app("fastapi", db, "async", websocket=websocket)
    browser = new_browser()
    with serve(app) as url:
        keeps_a_session_and_a_tab_apart(browser, url)
        guest = stored_id(browser, "sessionStorage")
        assert click(browser, "login", "Logged in") == "Logged in."
        member = stored_id(browser, "sessionStorage")
        # Read from this thread, which runs no loop: the move was done before the answer.
        assert db.sync.list_stored_user_keys(guest) == []
        assert db.sync.get_user_value(member, "name") == "alice"
        assert reload(browser) == "Hello None! (last time: alice)"
        assert click(browser, "logout", "Logged out") == "Logged out."
        assert db.sync.list_stored_user_keys(member) == []
    assert on_loop == []
    db.sync.close()
