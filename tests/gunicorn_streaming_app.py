"""A Dash 4.5 app for ``gunicorn -w 4``: Dash's shared storage is ours on a file, and a
streaming callback over HTTP appends ten frames, each after a session read and write.

Each request to ``_dash-update-component`` is recorded in ``requests.log`` with the pid of
the worker that served it, and whether it was a callback or the stream's downlink.
``STREAM_FOLDER`` names the folder of the store and the log; every worker shares the
signing secret of Dash's stream tokens (``DASH_SECRET_KEY``, set by the test).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import flask
from dash import Dash, Input, Output, Patch, html

from dash_database import DashDatabase
from dash_database.async_user_values import AsyncUserValues
from dash_database.dash import SharedStorage, init_app, session_store, user_callback

FOLDER = os.environ["STREAM_FOLDER"]
FRAMES = 10

db = DashDatabase(os.path.join(FOLDER, "store.sqlite3"))
app = Dash(__name__, shared_storage=SharedStorage(db))
init_app(app, db)
app.layout = lambda: html.Div(
    [session_store(app), html.Button("Ask", id="ask"), html.Div([], id="answer")]
)
server: flask.Flask = app.server


@server.before_request
def record() -> None:
    """Log which worker serves each callback and downlink request."""
    if flask.request.path.endswith("_dash-update-component"):
        body = flask.request.get_json(silent=True) or {}
        kind = "downlink" if "streamDownlink" in body else "callback"
        with open(os.path.join(FOLDER, "requests.log"), "a") as log:
            log.write(f"{os.getpid()} {kind}\n")


@user_callback(app, Output("answer", "children"), Input("ask", "n_clicks"))
async def answer(user: AsyncUserValues, clicks: int | None) -> AsyncIterator[Any]:
    """Append one frame at a time: the page shows every frame only if each arrived."""
    if not clicks:
        return
    for frame in range(1, FRAMES + 1):
        total = await user.get("frames", 0) + 1
        await user.set("frames", total)
        patch = Patch()
        patch.append(html.P(f"frame {frame}: {total} in this session"))
        yield patch
        await asyncio.sleep(0.05)  # the model thinking: frames arrive apart
