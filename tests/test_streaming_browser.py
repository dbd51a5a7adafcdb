"""Streaming callbacks (Dash 4.5: an ``async def`` generator) through ``user_callback``, in
Chromium, over HTTP and over WebSocket, on FastAPI and Quart; and the chat example.

They need Dash 4.5; CI's run on an older Dash deselects them (see ``needs_dash`` in
``conftest.py``), and any other run under CI fails them there."""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("dash", reason="the [dash] extra is not installed")

import dash
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from test_backends_browser import require_backend, stored_id

from dash_database import DashDatabase

from browser import wait_for_text
from dash_apps import serve, streaming_app
from helpers import load_example, require

pytestmark = pytest.mark.needs_dash("4.5.0rc1", "streaming callbacks")

# Record each text the answer shows: the frames as the browser saw them, in order.
OBSERVE = """
window.frames_seen = [];
new MutationObserver(() => {
    const answer = document.getElementById("answer");
    const text = answer && answer.textContent;
    if (text && window.frames_seen[window.frames_seen.length - 1] !== text) {
        window.frames_seen.push(text);
    }
}).observe(document.body, {childList: true, subtree: true, characterData: true});
"""


def require_streaming() -> None:
    """Dash 4.5 streams async generator callbacks; before it, there is nothing to test."""
    from dash import _callback

    require(
        "_validate_stream_callback" in vars(_callback),
        f"Dash {dash.__version__} has no streaming callbacks (4.5 and later)",
    )


def ask(driver: WebDriver, last: str) -> list[str]:
    """Click Ask; wait for the frame matching ``last``; return every frame the page showed."""
    wait_for_text(driver, "answer", "Ask something")
    driver.execute_script(OBSERVE)
    driver.find_element(By.ID, "ask").click()
    wait_for_text(driver, "answer", last)
    seen = driver.execute_script("return window.frames_seen")
    return [text for text in seen if text.startswith("frame")]


@pytest.mark.parametrize("transport", ["http", "websocket"])
@pytest.mark.parametrize("backend", ["fastapi", "quart"])
def test_a_streaming_callback_reads_and_writes_between_frames(
    backend: str, transport: str, tmp_path: Path, new_browser: Callable[[], WebDriver]
) -> None:
    """Three frames arrive in order, each having read and written the session; two tabs apart."""
    require_backend(backend)
    require_streaming()
    db = DashDatabase(tmp_path / "sessions.sqlite3")
    browser = new_browser()
    with serve(streaming_app(backend, db, transport == "websocket")) as url:
        browser.get(url)
        assert ask(browser, "^frame 3") == [
            "frame 1: 1 in this session",
            "frame 2: 2 in this session",
            "frame 3: 3 in this session",
        ]
        first = stored_id(browser, "sessionStorage")
        browser.switch_to.new_window("tab")
        browser.get(url)
        assert ask(browser, "^frame 3")[0] == "frame 1: 1 in this session"  # its own session
        second = stored_id(browser, "sessionStorage")
        wait_for_text(browser, "answer", "^frame 3")
    assert first != second
    for session in (first, second):
        assert dict(db.user(session)) == {"frames": 3, "finished": True}
    db.close()


@pytest.mark.parametrize("transport", ["http", "websocket"])
@pytest.mark.parametrize("backend", ["fastapi", "quart"])
def test_a_stream_cut_short_keeps_its_writes_and_logs_no_traceback(
    backend: str,
    transport: str,
    tmp_path: Path,
    new_browser: Callable[[], WebDriver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The tab closes mid-answer: the writes made so far stay, and nothing is logged as an error."""
    require_backend(backend)
    require_streaming()
    db = DashDatabase(tmp_path / "sessions.sqlite3")
    gate, ended = threading.Event(), threading.Event()
    browser = new_browser()
    app = streaming_app(backend, db, transport == "websocket", gate, ended)
    with serve(app) as url, caplog.at_level(logging.WARNING):
        browser.get(url)
        ask(browser, "^frame 1")
        session = stored_id(browser, "sessionStorage")
        browser.switch_to.new_window("tab")
        browser.switch_to.window(browser.window_handles[0])
        browser.close()  # the asking tab goes, mid-answer
        gate.set()
        browser.switch_to.window(browser.window_handles[0])
        browser.get(url)  # the server keeps serving
        wait_for_text(browser, "answer", "Ask something")
        assert ended.wait(30), "the stream never ended"
    # Over WebSocket Dash cancels the stream; over HTTP it runs on, its frames unread.
    frames, finished = (db.get_user_value(session, key) for key in ("frames", "finished"))
    assert frames >= 1  # the writes made before the cut stay
    assert finished is (frames == 3)
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not problems, [r.getMessage() for r in problems]
    db.close()


def test_user_callback_keeps_the_kind_of_the_function_it_wraps() -> None:
    """Dash sees an async generator function for a streaming callback, a coroutine function for
    an ``async def`` one and a plain function for a sync one."""
    require_streaming()
    from dash_database.dash import init_app, user_callback

    app = dash.Dash(__name__)
    init_app(app, DashDatabase(":memory:"))
    outputs = iter(dash.Output(f"out{n}", "children") for n in range(3))

    @user_callback(app, next(outputs), dash.Input("in", "value"))
    async def streamed(user: object, value: object) -> object:
        yield value

    @user_callback(app, next(outputs), dash.Input("in", "value"))
    async def awaited(user: object, value: object) -> object:
        return value

    @user_callback(app, next(outputs), dash.Input("in", "value"))
    def plain(user: object, value: object) -> object:
        return value

    kinds = [app.callback_map[f"out{n}.children"].get("stream", False) for n in range(3)]
    assert kinds == [True, False, False]
    assert inspect.isasyncgenfunction(streamed)


def test_the_chat_example_streams_keeps_and_clears_each_conversation(
    tmp_path: Path, new_browser: Callable[[], WebDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two messages, each reply streamed in several frames; a reload keeps the conversation,
    a second tab starts empty, and Clear ends it."""
    require_backend("fastapi")
    require_streaming()
    monkeypatch.setenv("DASH_DATABASE_PATH", str(tmp_path / "chat.sqlite3"))
    monkeypatch.setenv("CHAT_WORD_SECONDS", "0.02")
    chat = load_example("chat_app.py", "chat_example")
    browser = new_browser()

    def send(message: str, turn: int) -> list[str]:
        """Send ``message``; return the texts the conversation showed while it answered."""
        browser.execute_script(OBSERVE.replace('"answer"', '"conversation"'))
        browser.find_element(By.ID, "message").send_keys(message)
        browser.find_element(By.ID, "send").click()
        wait_for_text(browser, "size", "bytes on the server")
        wait_for_text(browser, "conversation", f"model: Answer {turn}: .* '{message.split()[0]}'")
        seen = browser.execute_script("return window.frames_seen")
        return [text for text in seen if f"Answer {turn}:" in text]

    with serve(chat.app) as url:
        browser.get(url)
        wait_for_text(browser, "size", "bytes on the server")
        assert len(send("hello there", 1)) > 2  # the reply arrived in pieces
        assert len(send("tell me more", 2)) > 2
        browser.refresh()
        text = wait_for_text(browser, "conversation", "Answer 2")
        assert text.count("you: ") == 2
        assert text.count("model: ") == 2
        first = browser.current_window_handle
        browser.switch_to.new_window("tab")
        browser.get(url)
        wait_for_text(browser, "size", "bytes on the server")
        assert browser.find_element(By.ID, "conversation").text == ""  # a tab of its own
        browser.close()
        browser.switch_to.window(first)
        session = stored_id(browser, "sessionStorage")
        assert len(chat.db.sync.get_user_value(session, "history")) == 4
        browser.find_element(By.ID, "clear").click()
        wait_for_text(browser, "size", "Cleared")
        assert chat.db.sync.list_stored_user_keys(session) == []
        assert stored_id(browser, "sessionStorage") != session
    chat.db.sync.close()
