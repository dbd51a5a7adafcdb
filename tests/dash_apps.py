"""Dash apps for the browser tests, and the servers that run them on 127.0.0.1.

Shared by the browser tests; each app is built the way the README shows.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dash import Dash, Input, Output, dcc, html

from dash_database import AsyncDashDatabase, AsyncUserValues, DashDatabase, UserValues
from dash_database.dash import init_app, session_store, user_callback

from helpers import free_port


def readme_app(
    backend: str, db: DashDatabase | AsyncDashDatabase, callback: str, storage_type: str = "session"
) -> Dash:
    """The README's app on a Dash backend, with a sync or an ``async def`` callback."""
    app = Dash(__name__, backend=backend)
    init_app(app, db, storage_type=storage_type)  # type: ignore[arg-type]

    def layout() -> html.Div:
        return html.Div([session_store(app), dcc.Input(id="name"), html.Div(id="greeting")])

    app.layout = layout
    if callback == "sync":

        @user_callback(app, Output("greeting", "children"), Input("name", "value"))
        def greet(user: UserValues, name: str | None) -> str:
            previous = user.get("name")
            user["name"] = name
            return f"Hello {name}! (last time: {previous})"

    else:

        @user_callback(app, Output("greeting", "children"), Input("name", "value"))
        async def greet_async(user: AsyncUserValues, name: str | None) -> str:
            previous = await user.get("name")
            await user.set("name", name)
            return f"Hello {name}! (last time: {previous})"

    return app


def _wait_for_port(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)  # a real server starting up: nothing to patch
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def _recording(asgi_app: Any, paths: list[str]) -> Any:
    """``asgi_app``, noting the path of every HTTP request it serves in ``paths``."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            paths.append(scope["path"])
        await asgi_app(scope, receive, send)

    return app


@contextmanager
def serve(app: Dash, paths: list[str] | None = None) -> Iterator[str]:
    """Serve ``app`` on a free port: Werkzeug for Flask, uvicorn for FastAPI and Quart.

    :param paths: uvicorn only: gets the path of every HTTP request served.
    """
    port = free_port()
    server: Any
    # Before Dash 4.2 every app is a Flask app, with no backend attribute.
    if type(getattr(app, "backend", None)).__name__.startswith(("Flask", "NoneType")):
        from werkzeug.serving import make_server

        server = make_server("127.0.0.1", port, app.server, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        stop = server.shutdown
    else:
        import uvicorn

        asgi = app.server if paths is None else _recording(app.server, paths)
        config = uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)

        def stop() -> None:
            server.should_exit = True

    thread.start()
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop()
        thread.join(timeout=20)


def background_app(db: DashDatabase, cache_folder: str) -> Dash:
    """An app whose callback runs in a background process (``DiskcacheManager``)."""
    import diskcache
    from dash import DiskcacheManager

    manager = DiskcacheManager(diskcache.Cache(cache_folder))  # type: ignore[no-untyped-call]
    app = Dash(__name__, background_callback_manager=manager)
    init_app(app, db)

    def layout() -> html.Div:
        return html.Div([session_store(app), html.Button("Run", id="run"), html.Div(id="result")])

    app.layout = layout

    @user_callback(app, Output("result", "children"), Input("run", "n_clicks"), background=True)
    def run(user: UserValues, clicks: int | None) -> str:
        runs = user.get("runs", 0) + (1 if clicks else 0)
        user["runs"] = runs
        return f"Runs in this session: {runs}"

    return app


def pattern_app(db: DashDatabase) -> Dash:
    """An app whose callback takes every field matching a pattern (``ALL``)."""
    from dash import ALL

    app = Dash(__name__)
    init_app(app, db)

    def layout() -> html.Div:
        fields = [dcc.Input(id={"type": "field", "index": i}, value="") for i in range(3)]
        return html.Div([session_store(app), *fields, html.Div(id="fields")])

    app.layout = layout

    @user_callback(
        app, Output("fields", "children"), Input({"type": "field", "index": ALL}, "value")
    )
    def fields(user: UserValues, values: list[str]) -> str:
        before = user.get("fields")
        user["fields"] = values
        return f"Stored {values}; before: {before}"

    return app


def streaming_app(
    backend: str,
    db: DashDatabase,
    websocket: bool,
    gate: threading.Event | None = None,
    ended: threading.Event | None = None,
) -> Dash:
    """An app whose ``user_callback`` is an async generator (Dash 4.5): each of its three
    frames reads the session and writes to it; after the last, it writes that it finished.

    :param gate: if given, the stream waits for it after each frame (a slow model).
    :param ended: if given, set when a stream ends, however it ends.
    """
    import asyncio

    app = Dash(__name__, backend=backend, websocket_callbacks=websocket)
    init_app(app, db)

    def layout() -> html.Div:
        return html.Div([session_store(app), html.Button("Ask", id="ask"), html.Div(id="answer")])

    app.layout = layout

    @user_callback(app, Output("answer", "children"), Input("ask", "n_clicks"))
    async def answer(user: AsyncUserValues, clicks: int | None) -> Any:
        if not clicks:
            yield "Ask something."
            return
        try:
            await user.set("finished", False)
            for frame in range(1, 4):
                total = await user.get("frames", 0) + 1
                await user.set("frames", total)
                yield f"frame {frame}: {total} in this session"
                if gate is not None:
                    await asyncio.to_thread(gate.wait, 30)
                await asyncio.sleep(0.05)  # the model thinking: frames arrive apart
            await user.set("finished", True)
        finally:
            if ended is not None:
                ended.set()

    return app


def websocket_app(
    backend: str, db: DashDatabase | AsyncDashDatabase, callback: str, websocket: bool = True
) -> Dash:
    """The README app with every callback over WebSocket (Dash 4.2+; over HTTP if not
    ``websocket``), and login and logout buttons; its ``user_callback`` functions are sync
    or ``async def``."""
    from dash_database.dash import end_session, rotate_session

    app = Dash(__name__, backend=backend, websocket_callbacks=websocket)
    init_app(app, db)

    def layout() -> html.Div:
        buttons = [
            html.Button(label, id=label.lower().replace(" ", "")) for label in ("Log in", "Log out")
        ]
        return html.Div(
            [
                session_store(app),
                dcc.Input(id="name"),
                html.Div(id="greeting"),
                *buttons,
                html.Div(id="status"),
            ]
        )

    app.layout = layout
    greeting = (Output("greeting", "children"), Input("name", "value"))
    login = (Output("status", "children"), Input("login", "n_clicks"))
    logout = (Output("status", "children", allow_duplicate=True), Input("logout", "n_clicks"))
    if callback == "sync":

        @user_callback(app, *greeting)
        def greet(user: UserValues, name: str | None) -> str:
            previous = user.get("name")
            if name:
                user["name"] = name
            return f"Hello {name}! (last time: {previous})"

        @user_callback(app, *login, prevent_initial_call=True)
        def log_in(user: UserValues, _: int) -> str:
            rotate_session(user)
            return "Logged in."

        @user_callback(app, *logout, prevent_initial_call=True)
        def log_out(user: UserValues, _: int) -> str:
            end_session(user)
            return "Logged out."

    else:

        @user_callback(app, *greeting)
        async def greet_async(user: AsyncUserValues, name: str | None) -> str:
            previous = await user.get("name")
            if name:
                await user.set("name", name)
            return f"Hello {name}! (last time: {previous})"

        @user_callback(app, *login, prevent_initial_call=True)
        async def log_in_async(user: AsyncUserValues, _: int) -> str:
            rotate_session(user)
            return "Logged in."

        @user_callback(app, *logout, prevent_initial_call=True)
        async def log_out_async(user: AsyncUserValues, _: int) -> str:
            end_session(user)
            return "Logged out."

    return app
