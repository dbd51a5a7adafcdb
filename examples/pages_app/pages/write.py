"""Page one: write a note for this session (a sync callback)."""

from __future__ import annotations

import dash
from dash import Input, Output, State, dcc, html

from dash_database import UserValues
from dash_database.dash import user_callback

dash.register_page(__name__, path="/", name="Write")

layout = html.Div(
    [
        html.Label("Note", htmlFor="note"),
        dcc.Input(id="note"),
        html.Button("Save", id="save"),
        html.Div(id="saved"),
    ]
)


@user_callback(Output("saved", "children"), Input("save", "n_clicks"), State("note", "value"))
def save(user: UserValues, clicks: int | None, note: str | None) -> str:
    """No ``app`` here: ``user_callback`` without it registers with ``dash.callback``."""
    if not clicks:
        return ""
    user["note"] = note
    return f"Saved {note!r}."
