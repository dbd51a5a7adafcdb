"""A multi-page Dash app whose page modules use the session's values without importing ``app``.

Run it with ``python examples/pages_app/app.py`` and open http://127.0.0.1:8050.
Dash imports the modules in ``pages/`` inside ``Dash(...)``, before this file
calls ``init_app``; the helpers there take no app, and find it per request.
"""

from __future__ import annotations

import os

import dash
from dash import Dash, dcc, html

from dash_database import DashDatabase
from dash_database.dash import init_app, session_store

db = DashDatabase(os.environ.get("DASH_DATABASE_PATH"))
app = Dash(__name__, use_pages=True, title="dash_database pages example")
server = app.server
init_app(app, db)


def layout() -> html.Div:
    """The session store lives here, outside the pages, so every page shares it."""
    links = [
        dcc.Link(page["name"], href=page["relative_path"]) for page in dash.page_registry.values()
    ]
    return html.Div([session_store(app), html.Nav(links, id="nav"), dash.page_container])


app.layout = layout

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=8050)
