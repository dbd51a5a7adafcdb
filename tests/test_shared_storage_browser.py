"""Dash 4.5 under ``gunicorn -w 4`` with our shared storage on a file: a streaming callback
over HTTP, in Chromium, where the downlink and the callback run in different workers."""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("dash._shared_storage", reason="shared storage is Dash 4.5's")

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from test_gunicorn import run_gunicorn

from dash_database import DashDatabase

from browser import wait_for_text

pytestmark = pytest.mark.needs_dash("4.5.0rc1", "shared storage")

TESTS = Path(__file__).resolve().parent


def test_frames_reach_the_page_in_order_through_other_workers(
    tmp_path: Path, new_browser: Callable[[], WebDriver]
) -> None:
    """Three questions, ten frames each: every frame reaches the page, in order, each after
    its session write, while the downlink and the callbacks ran in different workers."""
    env = {"STREAM_FOLDER": str(tmp_path), "DASH_SECRET_KEY": "one secret for every worker"}
    browser = new_browser()
    with run_gunicorn("gunicorn_streaming_app:server", TESTS, env) as url:
        browser.get(url)
        for question in range(1, 4):
            wait_for_text(browser, "ask", "Ask")  # the page has rendered its layout
            browser.find_element(By.ID, "ask").click()
            last = 10 * question
            wait_for_text(browser, "answer", f"frame 10: {last} in this session")
            shown = [p.text for p in browser.find_elements(By.CSS_SELECTOR, "#answer p")]
            assert shown == [
                f"frame {(n - 1) % 10 + 1}: {n} in this session" for n in range(1, last + 1)
            ]
    served = collections.defaultdict(set)
    for line in (tmp_path / "requests.log").read_text().splitlines():
        pid, kind = line.split()
        served[kind].add(pid)
    assert served["downlink"], "no downlink: the stream did not go through shared storage"
    assert any(
        downlink != callback for downlink in served["downlink"] for callback in served["callback"]
    ), "the downlink and the callbacks always ran in one worker"
    with DashDatabase(tmp_path / "store.sqlite3") as db:
        (session,) = db.list_users()
        assert db.get_user_value(session, "frames") == 30
