"""Headless Chromium for the browser tests: Debian's package, never one downloaded at test time."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from helpers import require

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# No internet on the test machines: nothing that phones home.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def require_chromium() -> None:
    """Skip without Debian's chromium locally; fail under CI."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    require(
        not missing, f"{' and '.join(missing)} missing (apt-get install chromium chromium-driver)"
    )


def start_chromium(profile: Path) -> WebDriver:
    """A new headless Chromium with its own profile folder, like another user."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    return driver


def wait_for_text(driver: WebDriver, element_id: str, pattern: str) -> str:
    """Wait until the element's text matches ``pattern``; return that text.

    Dash re-renders components while callbacks land, so an element found a moment
    ago may be gone: each try finds it again, and the text returned is the one matched.
    """
    matched: list[str] = []

    def matches(d: WebDriver) -> bool:
        text = str(d.find_element(By.ID, element_id).text)
        if re.search(pattern, text):
            matched.append(text)
        return bool(matched)

    ignored = (NoSuchElementException, StaleElementReferenceException)
    WebDriverWait(driver, 20, ignored_exceptions=ignored).until(matches)
    return matched[-1]
