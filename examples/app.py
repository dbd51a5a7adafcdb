"""Example Dash app: each browser tab keeps its own values on the server.

Run it with ``python examples/app.py`` and open http://127.0.0.1:8050.

* "Value": store a value for this session, and read it back.
* "DataFrame": generate a DataFrame that stays on the server; the browser gets a
  chart of it, unlike a ``dcc.Store``, which would send the whole frame.
* "This session": the session's keys and their sizes.
* "Operator" (only with ``DASH_DATABASE_OPERATOR_VIEW=1``): every session's
  keys, bytes and last activity, read-only; ids are shown hashed.

Set ``DASH_DATABASE_PATH`` to a file path (or a Redis URL) to share the data
between processes, as ``examples/gunicorn_app.py`` does; without it, a private
temporary file is used, removed when the app stops.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import Dash, Input, Output, State, dcc, html

from dash_database import DashDatabase, UserValues
from dash_database.dash import init_app, session_store, user_callback

MAX_ROWS = 200_000
OPERATOR_VIEW = os.environ.get("DASH_DATABASE_OPERATOR_VIEW") == "1"

logger = logging.getLogger("dash_database.example")
# The code-free serializer: the DataFrame is kept as Arrow, and nothing read back runs code.
db = DashDatabase(os.environ.get("DASH_DATABASE_PATH"), serializer="data")
app = Dash(__name__, title="dash_database example")
server = app.server  # what gunicorn serves
init_app(app, db)


def _labelled(label: str, control: object, *buttons: object) -> html.Div:
    control_id = getattr(control, "id", None)
    # A box of its own keeps Dash's number input (with its steppers) at a readable width.
    boxed = html.Div(control, style={"width": "16em"})
    return html.Div(
        [html.Label(label, htmlFor=control_id), html.Div([boxed, *buttons], className="row")]
    )


def layout() -> html.Div:
    """A function, so that each new browser tab gets a fresh session id."""
    tabs = [
        dcc.Tab(
            label="Value",
            children=html.Div(
                className="card",
                children=[
                    _labelled(
                        "Value to keep for this session",
                        dcc.Input(id="value-input", placeholder="type anything"),
                        html.Button("Store", id="store-button"),
                        html.Button("Read back", id="retrieve-button", className="secondary"),
                    ),
                    html.Div(id="store-output", className="message"),
                    html.Div(id="retrieve-output", className="message"),
                ],
            ),
        ),
        dcc.Tab(
            label="DataFrame",
            children=html.Div(
                className="card",
                children=[
                    _labelled(
                        f"Rows (1 to {MAX_ROWS:,})",
                        dcc.Input(
                            id="rows-input", type="number", value=1000, min=1, max=MAX_ROWS, step=1
                        ),
                        html.Button("Generate on the server", id="generate-button"),
                    ),
                    html.Div(id="frame-output", className="message"),
                    dcc.Graph(id="frame-graph", config={"displaylogo": False}),
                ],
            ),
        ),
        dcc.Tab(
            label="This session",
            value="session",
            children=html.Div(
                className="card",
                children=[
                    html.Div(id="session-keys"),
                ],
            ),
        ),
    ]
    if OPERATOR_VIEW:
        tabs.append(
            dcc.Tab(
                label="Operator",
                value="operator",
                children=html.Div(
                    className="card",
                    children=[
                        html.P(
                            "Every session in the store, read-only: looking here changes no one's "
                            "activity. Ids are bearer tokens, so they are shown hashed.",
                            className="hint",
                        ),
                        html.Div(id="operator-table"),
                        dcc.Graph(id="operator-graph", config={"displaylogo": False}),
                    ],
                ),
            )
        )
    return html.Div(
        className="page",
        children=[
            session_store(app),
            html.Header(
                [html.H1("dash_database example"), html.Span(id="session-badge", className="badge")]
            ),
            dcc.Tabs(id="tabs", value="tab-1", children=tabs),
        ],
    )


app.layout = layout


@user_callback(app, Output("session-badge", "children"), Input("session-badge", "id"))
def badge(user: UserValues, _: str) -> str:
    """The session id, shortened: enough to tell two tabs apart, too little to use."""
    return f"session {user.user_id[:6]}…{user.user_id[-4:]}"


@user_callback(
    app,
    Output("store-output", "children"),
    Input("store-button", "n_clicks"),
    State("value-input", "value"),
    prevent_initial_call=True,
)
def store(user: UserValues, _: int, value: str | None) -> str:
    """Keep the typed value for this session."""
    user["value"] = value or ""
    return f"Stored “{value or ''}” for this session."


@user_callback(
    app,
    Output("retrieve-output", "children"),
    Input("retrieve-button", "n_clicks"),
    prevent_initial_call=True,
)
def retrieve(user: UserValues, _: int) -> str:
    """Read this session's value back."""
    if "value" not in user:
        return "Nothing stored yet in this session."
    return f"This session holds “{user['value']}”."


def _figure(frame: pd.DataFrame | None) -> go.Figure:
    figure = go.Figure(layout={"margin": {"l": 40, "r": 10, "t": 30, "b": 40}, "height": 320})
    if frame is None:
        figure.update_layout(title="No DataFrame in this session yet")
        return figure
    step = max(1, len(frame) // 2000)  # the browser gets at most ~2,000 points
    shown = frame.iloc[::step]
    figure.add_scatter(x=shown["x"], y=shown["y"].cumsum() * step, mode="lines", name="y")
    figure.update_layout(title=f"Random walk of {len(frame):,} rows, kept on the server")
    return figure


@user_callback(
    app,
    Output("frame-output", "children"),
    Output("frame-graph", "figure"),
    Input("generate-button", "n_clicks"),
    State("rows-input", "value"),
)
def generate(user: UserValues, clicks: int | None, rows: float | None) -> tuple[str, go.Figure]:
    """Build a DataFrame and keep it on the server; the browser gets a chart only."""
    if not clicks:  # the page loaded: show what this session already holds
        return "", _figure(user.get("frame"))
    if rows is None or rows != int(rows) or not 1 <= rows <= MAX_ROWS:
        return f"Enter a whole number of rows from 1 to {MAX_ROWS:,}.", _figure(user.get("frame"))
    rng = np.random.default_rng()
    frame = pd.DataFrame({"x": np.arange(int(rows)), "y": rng.normal(size=int(rows))})
    user["frame"] = frame
    return f"Generated {len(frame):,} rows, kept on the server.", _figure(frame)


def _size(size: int | None) -> str:
    return "missing" if size is None else f"{size:,} bytes"


@user_callback(app, Output("session-keys", "children"), Input("tabs", "value"))
def session_keys(user: UserValues, tab: str) -> html.Table | html.P:
    """This session's keys and sizes, read without decoding a single value."""
    sizes = db.inspect.key_sizes(user.user_id)
    if not sizes:
        return html.P("This session holds nothing yet.", className="hint")
    rows = [
        html.Tr([html.Td(str(key)), html.Td(_size(size), className="number")])
        for key, size in sizes.items()
    ]
    return html.Table([html.Tr([html.Th("Key"), html.Th("Size", className="number")]), *rows])


def _hashed(user_id: object) -> str:
    return hashlib.sha256(str(user_id).encode()).hexdigest()[:12]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC"
    )


if OPERATOR_VIEW:

    @app.callback(
        Output("operator-table", "children"),
        Output("operator-graph", "figure"),
        Input("tabs", "value"),
    )
    def operator_view(tab: str) -> tuple[html.Table, go.Figure]:
        """Every session, largest first; db.inspect reads without marking any activity."""
        users = sorted(db.inspect.users(), key=lambda u: u.bytes, reverse=True)
        header = html.Tr(
            [
                html.Th("Session (hashed)"),
                html.Th("Keys", className="number"),
                html.Th("Bytes", className="number"),
                html.Th("Last activity"),
            ]
        )
        rows = [
            html.Tr(
                [
                    html.Td(_hashed(u.user_id)),
                    html.Td(f"{u.keys:,}", className="number"),
                    html.Td(f"{u.bytes:,}", className="number"),
                    html.Td(_when(u.last_activity)),
                ]
            )
            for u in users
        ]
        top = users[:10]
        figure = go.Figure(
            layout={
                "margin": {"l": 40, "r": 10, "t": 30, "b": 90},
                "height": 320,
                "title": "Largest sessions (bytes)",
            }
        )
        figure.add_bar(x=[_hashed(u.user_id) for u in top], y=[u.bytes for u in top])
        return html.Table([header, *rows]), figure


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logger.info("dash_database example: sessions are kept in %r", db)
    app.run(host="127.0.0.1", port=8050, debug=False)
