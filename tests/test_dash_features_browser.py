"""In Chromium: the pages example, a background callback and a pattern-matching callback."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("dash", reason="the [dash] extra is not installed")

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from dash_database import DashDatabase

from browser import wait_for_text
from dash_apps import background_app, pattern_app, serve
from helpers import load_example, require

PAGES_APP = Path(__file__).resolve().parent.parent / "examples" / "pages_app" / "app.py"


@pytest.mark.needs_dash("3.1", "async callbacks")
def test_pages_use_the_session_without_importing_app(
    tmp_path: Path, new_browser: Callable[[], WebDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A note written on one page (sync callback) is read on another (async), per tab."""
    monkeypatch.setenv("DASH_DATABASE_PATH", str(tmp_path / "pages.sqlite3"))
    monkeypatch.syspath_prepend(str(PAGES_APP.parent))
    module = load_example("pages_app/app.py", "pages_example")
    browser = new_browser()
    with serve(module.app) as url:
        browser.get(url)
        wait_for_text(browser, "nav", "Read")
        browser.find_element(By.ID, "note").send_keys("remember the milk")
        browser.find_element(By.ID, "save").click()
        assert wait_for_text(browser, "saved", "Saved") == "Saved 'remember the milk'."
        browser.find_element(By.LINK_TEXT, "Read").click()
        note = wait_for_text(browser, "note-read", "Your note")
        assert note == "Your note: 'remember the milk'"
        browser.switch_to.new_window("tab")
        browser.get(url + "read")
        assert wait_for_text(browser, "note-read", "Your note") == "Your note: None"
    module.db.close()


def test_a_background_callback_gets_the_sessions_values(
    tmp_path: Path, new_browser: Callable[[], WebDriver]
) -> None:
    """A DiskcacheManager callback, run in another process, reads and writes the session."""
    for module in ("diskcache", "multiprocess", "psutil"):
        require(
            importlib.util.find_spec(module) is not None,
            f"{module} is missing (pip install '.[test]')",
        )
    db = DashDatabase(tmp_path / "background.sqlite3")
    app = background_app(db, str(tmp_path / "cache"))
    browser = new_browser()
    with serve(app) as url:
        browser.get(url)
        assert wait_for_text(browser, "result", "Runs") == "Runs in this session: 0"
        browser.find_element(By.ID, "run").click()
        assert wait_for_text(browser, "result", "1") == "Runs in this session: 1"
        browser.find_element(By.ID, "run").click()
        assert wait_for_text(browser, "result", "2") == "Runs in this session: 2"
    assert [db.get_user_value(user, "runs") for user in db.list_users()] == [2]
    db.close()


def test_a_pattern_matching_callback_gets_the_sessions_values(
    tmp_path: Path, new_browser: Callable[[], WebDriver]
) -> None:
    """A callback on every field matching {"type": "field", "index": ALL} keeps them per tab."""
    db = DashDatabase(tmp_path / "pattern.sqlite3")
    app = pattern_app(db)
    browser = new_browser()
    with serve(app) as url:
        browser.get(url)
        wait_for_text(browser, "fields", "Stored")
        field = browser.find_element(By.CSS_SELECTOR, "input")
        field.send_keys("x")
        assert (
            wait_for_text(browser, "fields", r"\['x'")
            == "Stored ['x', '', '']; before: ['', '', '']"
        )
        browser.refresh()
        assert wait_for_text(browser, "fields", "before") == (
            "Stored ['', '', '']; before: ['x', '', '']"
        )
    db.close()


def test_login_rotates_the_session_and_logout_ends_it(
    tmp_path: Path, new_browser: Callable[[], WebDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values survive login under a new id; the old id reads nothing; logout empties it."""
    monkeypatch.setenv("DASH_DATABASE_PATH", str(tmp_path / "login.sqlite3"))
    module = load_example("login_app.py", "login_example")
    browser = new_browser()

    def session_id() -> str:
        return str(
            browser.execute_script(
                "return JSON.parse(sessionStorage.getItem('dash-database-session'))"
            )
        )

    def click(button: str, element: str, pattern: str) -> str:
        browser.find_element(By.ID, button).click()
        return wait_for_text(browser, element, pattern)

    with serve(module.app) as url:
        browser.get(url)
        wait_for_text(browser, "status", "")
        browser.find_element(By.ID, "item").send_keys("apple")
        assert click("add", "cart", "apple") == "Cart: apple"
        guest = session_id()
        assert click("login", "status", "Logged in") == "Logged in."
        member = session_id()
        assert member != guest
        assert module.db.get_user_value(member, "cart") == ["apple"]
        assert module.db.list_stored_user_keys(guest) == []  # the old id reads nothing
        browser.refresh()
        wait_for_text(browser, "status", "")  # rendered again
        assert click("show", "cart", "apple") == "Cart: apple"  # the tab kept the new id
        assert click("logout", "status", "Logged out") == "Logged out."
        assert session_id() not in (guest, member)
        assert module.db.list_users() == []
        assert click("show", "cart", "^Cart:$") == "Cart:"  # not the old text, still shown
    module.db.close()
