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


@contextmanager
def serve(app: Dash) -> Iterator[str]:
    """Serve ``app`` on a free port: Werkzeug for Flask, uvicorn for FastAPI and Quart."""
    port = free_port()
    server: Any
    if app.backend.__class__.__name__.startswith("Flask"):
        from werkzeug.serving import make_server

        server = make_server("127.0.0.1", port, app.server, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        stop = server.shutdown
    else:
        import uvicorn

        config = uvicorn.Config(app.server, host="127.0.0.1", port=port, log_level="warning")
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
