"""Page two: read the note back (an ``async def`` callback)."""

from __future__ import annotations

import dash
from dash import Input, Output, html

from dash_database import AsyncUserValues
from dash_database.dash import user_callback

dash.register_page(__name__, path="/read", name="Read")

layout = html.Div([html.Div(id="note-read")])


@user_callback(Output("note-read", "children"), Input("note-read", "id"))
async def read(user: AsyncUserValues, _: str) -> str:
    """An async callback gets the async view."""
    return f"Your note: {await user.get('note')!r}"
