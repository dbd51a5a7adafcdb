"""Example Dash app: each browser tab keeps its own values on the server.

Run it with ``python examples/app.py`` and open http://127.0.0.1:8050.

* Tab "Store": type a value and store it for this session.
* Tab "Retrieve": read it back.
* Tab "DataFrame": generate a DataFrame that stays on the server; only its
  summary travels to the browser, unlike a ``dcc.Store``.

Set ``DASH_DATABASE_PATH`` to a file path to share the data between processes
(see ``examples/gunicorn_app.py``); without it, a private temporary file is used.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from dash import Dash, Input, Output, State, dcc, html

from dash_database import DashDatabase, UserValues
from dash_database.dash import init_app, session_store, user_callback

db = DashDatabase(os.environ.get("DASH_DATABASE_PATH"))
app = Dash(__name__, title="dash_database example")
server = app.server  # what gunicorn serves
init_app(app, db)


def layout() -> html.Div:
    """A function, so that each new browser tab gets a fresh session id."""
    return html.Div(
        [
            session_store(app),
            html.H1("dash_database example"),
            dcc.Tabs(
                [
                    dcc.Tab(
                        label="Store",
                        children=[
                            dcc.Input(id="value-input", placeholder="type a value"),
                            html.Button("Store", id="store-button"),
                            html.Div(id="store-output"),
                        ],
                    ),
                    dcc.Tab(
                        label="Retrieve",
                        children=[
                            html.Button("Retrieve", id="retrieve-button"),
                            html.Div(id="retrieve-output"),
                        ],
                    ),
                    dcc.Tab(
                        label="DataFrame",
                        children=[
                            dcc.Input(id="rows-input", type="number", value=100_000, min=1),
                            html.Button("Generate on the server", id="generate-button"),
                            html.Button("Summarize", id="summarize-button"),
                            html.Pre(id="frame-output"),
                        ],
                    ),
                ]
            ),
        ]
    )


app.layout = layout


@user_callback(
    app,
    Output("store-output", "children"),
    Input("store-button", "n_clicks"),
    State("value-input", "value"),
    prevent_initial_call=True,
)
def store(user: UserValues, _: int, value: str | None) -> str:
    """Keep the typed value for this session."""
    user["value"] = value
    return f"Stored {value!r}."


@user_callback(
    app,
    Output("retrieve-output", "children"),
    Input("retrieve-button", "n_clicks"),
    prevent_initial_call=True,
)
def retrieve(user: UserValues, _: int) -> str:
    """Read this session's value back."""
    return f"Stored value: {user.get('value')!r}"


@user_callback(
    app,
    Output("frame-output", "children", allow_duplicate=True),
    Input("generate-button", "n_clicks"),
    State("rows-input", "value"),
    prevent_initial_call=True,
)
def generate(user: UserValues, _: int, rows: int | None) -> str:
    """Build a DataFrame and keep it on the server; send only a line back."""
    rows = max(1, int(rows or 1))
    rng = np.random.default_rng()
    frame = pd.DataFrame({"x": np.arange(rows), "y": rng.normal(size=rows)})
    user["frame"] = frame
    return f"Generated {_describe(frame)} on the server."


@user_callback(
    app,
    Output("frame-output", "children"),
    Input("summarize-button", "n_clicks"),
    prevent_initial_call=True,
)
def summarize(user: UserValues, _: int) -> str:
    """Summarize this session's DataFrame, read from the server."""
    frame = user.get("frame")
    if frame is None:
        return "No DataFrame yet: generate one first."
    return f"Read back {_describe(frame)}.\n{frame.describe().to_string()}"


def _describe(frame: pd.DataFrame) -> str:
    # The checksum lets a reader (and the browser test) see that it came back whole.
    size = frame.memory_usage().sum()
    return f"{len(frame):,} rows ({size:,} bytes, sum of y {frame['y'].sum():.6f})"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=8050, debug=False)
