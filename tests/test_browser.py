"""The example app in a real headless Chromium: isolated users, tab sessions, a DataFrame."""

from __future__ import annotations

import importlib.util
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("dash", reason="the [dash] extra is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

from browser import require_chromium, wait_for_text  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "app.py"


def load_example(tmp_path: Path) -> ModuleType:
    """Import examples/app.py as a fresh module (its own database)."""
    spec = importlib.util.spec_from_file_location(f"example_app_{tmp_path.name}", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def app_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The example app, served on a free 127.0.0.1 port by a threaded server."""
    require_chromium()
    monkeypatch.delenv("DASH_DATABASE_PATH", raising=False)
    example = load_example(tmp_path)
    server = make_server("127.0.0.1", 0, example.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        example.db.close()


def open_tab(driver: WebDriver, label: str) -> None:
    """Click the dcc.Tab with that label."""
    tab = WebDriverWait(driver, 20).until(
        expected_conditions.element_to_be_clickable(
            (By.XPATH, f"//div[contains(@class, 'tab') and normalize-space()='{label}']")
        )
    )
    tab.click()


def load(driver: WebDriver, url: str) -> None:
    """Open the app and wait until Dash has rendered it."""
    driver.get(url)
    WebDriverWait(driver, 20).until(
        expected_conditions.presence_of_element_located((By.ID, "store-button"))
    )


def store_value(driver: WebDriver, value: str) -> None:
    """Type and store a value through the UI."""
    open_tab(driver, "Store")
    field = driver.find_element(By.ID, "value-input")
    field.clear()
    field.send_keys(value)
    driver.find_element(By.ID, "store-button").click()
    wait_for_text(driver, "store-output", re.escape(f"Stored {value!r}."))


def retrieve_value(driver: WebDriver) -> str:
    """Read this session's value back through the UI; once per page load.

    It waits for the output to change, so a second call on the same page load,
    reading the same value, would time out.
    """
    open_tab(driver, "Retrieve")
    old = driver.find_element(By.ID, "retrieve-output").text
    driver.find_element(By.ID, "retrieve-button").click()
    WebDriverWait(driver, 20).until(
        lambda d: d.find_element(By.ID, "retrieve-output").text not in ("", old)
    )
    return str(driver.find_element(By.ID, "retrieve-output").text)


def test_two_browsers_each_read_only_their_own_value(
    app_url: str, new_browser: Callable[[], WebDriver]
) -> None:
    """Two independent browsers store different values; each reads back only its own."""
    alice, bob = new_browser(), new_browser()
    load(alice, app_url)
    load(bob, app_url)
    store_value(alice, "alice's secret")
    store_value(bob, "bob's secret")
    assert retrieve_value(alice) == 'Stored value: "alice\'s secret"'
    assert retrieve_value(bob) == 'Stored value: "bob\'s secret"'


def test_reload_keeps_the_session_and_a_new_tab_starts_fresh(
    app_url: str, new_browser: Callable[[], WebDriver]
) -> None:
    """Reloading a tab keeps its value; a new tab of the same browser gets a fresh session."""
    browser = new_browser()
    load(browser, app_url)
    store_value(browser, "kept")
    browser.refresh()
    load(browser, app_url)
    assert retrieve_value(browser) == "Stored value: 'kept'"

    first_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    load(browser, app_url)
    assert retrieve_value(browser) == "Stored value: None"
    browser.switch_to.window(first_tab)
    load(browser, app_url)
    assert retrieve_value(browser) == "Stored value: 'kept'"


def test_a_dataframe_round_trips_on_the_server(
    app_url: str, new_browser: Callable[[], WebDriver]
) -> None:
    """A DataFrame generated on the server is read back whole; only a summary is sent."""
    browser = new_browser()
    load(browser, app_url)
    open_tab(browser, "DataFrame")
    rows = browser.find_element(By.ID, "rows-input")
    rows.clear()
    rows.send_keys("250000")
    browser.find_element(By.ID, "generate-button").click()
    generated = wait_for_text(browser, "frame-output", r"^Generated 250,000 rows")
    description = generated.removeprefix("Generated ").removesuffix(" on the server.")
    browser.find_element(By.ID, "summarize-button").click()
    summary = wait_for_text(browser, "frame-output", r"^Read back")
    assert summary.splitlines()[0] == f"Read back {description}."
    assert re.search(r"count\s+250000\.0", summary)
