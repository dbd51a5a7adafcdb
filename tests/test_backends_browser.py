"""The README app in Chromium on Dash's Flask, FastAPI and Quart backends, sync and async."""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dash", reason="the [dash] extra is not installed")

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from dash_database import AsyncDashDatabase, DashDatabase
from dash_database.sessions import check_session_id

from browser import wait_for_text
from dash_apps import readme_app, serve
from helpers import require

pytestmark = pytest.mark.needs_dash("4.2", "the FastAPI and Quart backends")

STORE = "dash-database-session"
SERVERS = {"flask": "werkzeug", "fastapi": "uvicorn", "quart": "uvicorn"}


def require_backend(backend: str) -> None:
    """Skip without the backend's packages locally; fail under CI, which must install them."""
    modules = {"flask": ["asgiref"], "fastapi": ["fastapi"], "quart": ["quart"]}[backend]
    for module in [*modules, SERVERS[backend]]:
        found = importlib.util.find_spec(module) is not None
        require(found, f"{module} is missing (pip install '.[test]')")


def greeting(driver: WebDriver) -> str:
    """The greeting the app shows."""
    return str(driver.find_element(By.ID, "greeting").text)


def say(driver: WebDriver, name: str) -> str:
    """Enter a name, as one change; return the greeting that answers it.

    Typed key by key, each keystroke would be a callback of its own, and under load one for
    "b" may write before the one for "bob" reads: the greeting would depend on timing.
    """
    driver.execute_script(
        "const input = document.getElementById(arguments[0]);"
        "Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value')"
        ".set.call(input, arguments[1]);"
        "input.dispatchEvent(new Event('input', {bubbles: true}));",
        "name",
        name,
    )
    return wait_for_text(driver, "greeting", f"^Hello {name}!")


def open_page(driver: WebDriver, url: str, expected: str = "^Hello") -> str:
    """Load the page; return the greeting of its first callback."""
    driver.get(url)
    return wait_for_text(driver, "greeting", expected)


def reload(driver: WebDriver) -> str:
    """Reload the page; return the greeting of its first callback."""
    driver.refresh()
    return wait_for_text(driver, "greeting", "^Hello")


def stored_id(driver: WebDriver, storage: str) -> Any:
    """The session id the browser keeps."""
    return json.loads(driver.execute_script(f"return {storage}.getItem('{STORE}')") or "null")


def keeps_a_session_and_a_tab_apart(driver: WebDriver, url: str) -> None:
    """A name said in a tab is there after a reload; a new tab starts a session of its own
    (then closes, leaving the first tab current)."""
    assert open_page(driver, url) == "Hello None! (last time: None)"
    assert say(driver, "alice") == "Hello alice! (last time: None)"
    assert reload(driver) == "Hello None! (last time: alice)"
    first = driver.current_window_handle
    driver.switch_to.new_window("tab")
    assert open_page(driver, url) == "Hello None! (last time: None)"  # a tab of its own
    driver.close()
    driver.switch_to.window(first)


def refused_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The log records of refused session ids."""
    return [r for r in caplog.records if r.getMessage().startswith("refused a callback")]


def open_database(face: str, tmp_path: Path) -> DashDatabase | AsyncDashDatabase:
    """A database on a file, through the sync or the async face."""
    path = tmp_path / "sessions.sqlite3"
    return DashDatabase(path) if face == "sync db" else AsyncDashDatabase(path)


@pytest.mark.parametrize("face", ["sync db", "async db"])
@pytest.mark.parametrize("callback", ["sync", "async"])
@pytest.mark.parametrize("backend", ["flask", "fastapi", "quart"])
def test_the_readme_app_keeps_tabs_apart_and_heals_a_tampered_id(
    backend: str,
    callback: str,
    face: str,
    tmp_path: Path,
    new_browser: Callable[[], WebDriver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two tabs stay apart, a reload keeps the session, and a tampered id heals on reload."""
    require_backend(backend)
    db = open_database(face, tmp_path)
    app = readme_app(backend, db, callback)
    browser = new_browser()
    with serve(app) as url, caplog.at_level(logging.WARNING, logger="dash_database"):
        keeps_a_session_and_a_tab_apart(browser, url)

        browser.execute_script(f"sessionStorage.setItem('{STORE}', JSON.stringify('abc'))")
        browser.get(url)
        wait_for_text(browser, "name", "")
        healed = stored_id(browser, "sessionStorage")
        assert healed != "abc"
        assert check_session_id(healed) == healed
        assert say(browser, "bob") == "Hello bob! (last time: None)"  # a fresh session
        assert reload(browser) == "Hello None! (last time: bob)"
    lines = refused_lines(caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]  # the first callback after tampering
    assert lines[0].exc_info is None
    assert "malformed session id" in lines[0].getMessage()
    sync = db.sync if isinstance(db, AsyncDashDatabase) else db
    assert "abc" not in sync.list_users()
    sync.close()


@pytest.mark.parametrize("backend", ["flask", "fastapi", "quart"])
def test_local_storage_shares_one_session_per_browser_and_heals(
    backend: str,
    tmp_path: Path,
    new_browser: Callable[[], WebDriver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With storage_type="local" the tabs of a browser share a session; a bad id heals too."""
    require_backend(backend)
    db = AsyncDashDatabase(tmp_path / "local.sqlite3")
    app = readme_app(backend, db, "async", storage_type="local")
    browser = new_browser()
    with serve(app) as url, caplog.at_level(logging.WARNING, logger="dash_database"):
        assert open_page(browser, url) == "Hello None! (last time: None)"
        assert say(browser, "carol") == "Hello carol! (last time: None)"
        first = browser.current_window_handle
        browser.switch_to.new_window("tab")
        assert open_page(browser, url) == "Hello None! (last time: carol)"
        # One tab only: an open tab would see the edit (a storage event) and heal it first.
        browser.close()
        browser.switch_to.window(first)
        browser.execute_script(f"localStorage.setItem('{STORE}', JSON.stringify('abc'))")
        browser.get(url)
        wait_for_text(browser, "name", "")
        assert say(browser, "dave") == "Hello dave! (last time: None)"
        assert check_session_id(stored_id(browser, "localStorage"))
    assert len(refused_lines(caplog)) == 1
    db.sync.close()
