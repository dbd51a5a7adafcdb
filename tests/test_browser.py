"""The example app in headless Chromium: tabs apart, a server-side DataFrame, the operator view."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("dash", reason="the [dash] extra is not installed")

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from browser import wait_for_text
from dash_apps import serve

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "app.py"


def load_example(tmp_path: Path, operator_view: bool) -> ModuleType:
    """Import examples/app.py as a fresh module (its own database, the flag as asked)."""
    os.environ["DASH_DATABASE_OPERATOR_VIEW"] = "1" if operator_view else "0"
    name = f"example_app_{tmp_path.name}_{operator_view}"
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=[False, True], ids=["plain", "operator-view"])
def example(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModuleType, str]]:
    """The example app served on 127.0.0.1, without and with the operator view."""
    monkeypatch.delenv("DASH_DATABASE_PATH", raising=False)
    monkeypatch.setenv("DASH_DATABASE_OPERATOR_VIEW", "0")
    module = load_example(tmp_path, request.param)
    with serve(module.app) as url:
        yield module, url
    module.db.close()


def screenshot(driver: WebDriver, name: str) -> None:
    """Save a screenshot where CI keeps its artifacts (SCREENSHOT_DIR), if set."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.set_window_size(1100, 820)
        assert driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def read_session_id(driver: WebDriver) -> str:
    """The session id the tab keeps."""
    stored = driver.execute_script("return sessionStorage.getItem('dash-database-session')")
    return str(json.loads(stored))


def open_tab(driver: WebDriver, label: str) -> None:
    """Click the dcc.Tab with that label."""
    tab = WebDriverWait(driver, 20).until(
        expected_conditions.element_to_be_clickable(
            (By.XPATH, f"//div[contains(@class, 'tab') and normalize-space()='{label}']")
        )
    )
    tab.click()


def load(driver: WebDriver, url: str) -> str:
    """Open the app, wait until Dash has rendered it; return the session badge."""
    driver.get(url)
    return wait_for_text(driver, "session-badge", "^session ")


def store_value(driver: WebDriver, value: str) -> None:
    """Type and store a value through the UI."""
    open_tab(driver, "Value")
    field = driver.find_element(By.ID, "value-input")
    field.clear()
    field.send_keys(value)
    driver.find_element(By.ID, "store-button").click()
    wait_for_text(driver, "store-output", re.escape(f"Stored “{value}” for this session."))


def read_back(driver: WebDriver) -> str:
    """Read this session's value back through the UI; once per page load."""
    open_tab(driver, "Value")
    driver.find_element(By.ID, "retrieve-button").click()
    return wait_for_text(driver, "retrieve-output", r"\S")


def generate(driver: WebDriver, rows: str) -> str:
    """Ask for a DataFrame of ``rows`` rows; return the app's answer."""
    field = driver.find_element(By.ID, "rows-input")
    field.clear()
    field.send_keys(rows)
    driver.find_element(By.ID, "generate-button").click()
    return wait_for_text(driver, "frame-output", r"\S")


def test_the_example_stores_reloads_and_keeps_tabs_apart(
    example: tuple[ModuleType, str], new_browser: Callable[[], WebDriver]
) -> None:
    """A value survives a reload; a second tab is another session; the badge tells them apart."""
    _, url = example
    browser = new_browser()
    first_badge = load(browser, url)
    store_value(browser, "kept")
    assert load(browser, url) == first_badge  # a reload keeps the tab's session
    assert read_back(browser) == "This session holds “kept”."
    first_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    assert load(browser, url) != first_badge
    assert read_back(browser) == "Nothing stored yet in this session."
    browser.switch_to.window(first_tab)


def test_the_graph_shows_the_stored_frame_and_rows_are_bounded(
    example: tuple[ModuleType, str], new_browser: Callable[[], WebDriver]
) -> None:
    """The chart is drawn from the server's DataFrame, after a reload too; rows are bounded."""
    module, url = example
    browser = new_browser()
    load(browser, url)
    open_tab(browser, "DataFrame")
    assert generate(browser, "5000") == "Generated 5,000 rows, kept on the server."
    wait_for_text(browser, "frame-graph", "Random walk of 5,000 rows")
    [session] = module.db.list_users()
    assert len(module.db.get_user_value(session, "frame")) == 5000
    screenshot(browser, "example-app")
    load(browser, url)  # a reload: the same tab, the same session
    open_tab(browser, "DataFrame")
    wait_for_text(browser, "frame-graph", "Random walk of 5,000 rows")  # read back from the store
    assert generate(browser, "9999999") == "Enter a whole number of rows from 1 to 200,000."
    open_tab(browser, "This session")
    assert "frame" in wait_for_text(browser, "session-keys", "frame")


def test_the_operator_view_lists_sessions_read_only_and_only_when_asked(
    example: tuple[ModuleType, str], new_browser: Callable[[], WebDriver]
) -> None:
    """With the flag, both sessions are listed, hashed, without changing their activity."""
    module, url = example
    alice, bob = new_browser(), new_browser()
    load(alice, url)
    store_value(alice, "alice's")
    load(bob, url)
    store_value(bob, "bob's")
    if os.environ["DASH_DATABASE_OPERATOR_VIEW"] != "1":
        labels = [tab.text for tab in alice.find_elements(By.CSS_SELECTOR, ".tab")]
        assert "Operator" not in labels
        return
    users = module.db.list_users()
    # An hour back, and out of this process's cache: any read through the public API
    # would now record activity. Alice clicks (her own activity); Bob does nothing.
    with sqlite3.connect(module.db._backend.location) as conn:
        conn.execute("UPDATE dash_database_sessions SET seen = seen - 3600")
    module.db._activity.forget(*users)
    bob_id = read_session_id(bob)
    bob_before = module.db.inspect.last_activity(bob_id)
    open_tab(alice, "Operator")
    # The table drawn when the page loaded was empty: wait for the one of this click.
    table = wait_for_text(alice, "operator-table", r"^Session.*(\n.+){2}$")
    assert len(table.splitlines()) == 3  # a header and two sessions
    for user in users:
        assert str(user) not in table  # bearer tokens are never shown
    wait_for_text(alice, "operator-graph", "Largest sessions")
    screenshot(alice, "operator-view")
    assert module.db.inspect.last_activity(bob_id) == bob_before
