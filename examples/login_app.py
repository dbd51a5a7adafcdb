"""Sessions across a login: rotate the session id at login, end the session at logout.

Run it with ``python examples/login_app.py`` and open http://127.0.0.1:8050.
Put things in the cart as a guest, log in (the cart stays, under a new
session id), log out (the cart and the session go).
"""

from __future__ import annotations

import os

from dash import Dash, Input, Output, State, dcc, html

from dash_database import DashDatabase, UserValues
from dash_database.dash import end_session, init_app, rotate_session, session_store, user_callback

db = DashDatabase(os.environ.get("DASH_DATABASE_PATH"))
app = Dash(__name__, title="dash_database login example")
init_app(app, db)


def layout() -> html.Div:
    """The cart, and the buttons that log in and out."""
    return html.Div(
        [
            session_store(app),
            html.Label("Item", htmlFor="item"),
            dcc.Input(id="item"),
            html.Button("Add to cart", id="add"),
            html.Button("Log in", id="login"),
            html.Button("Log out", id="logout"),
            html.Button("Show cart", id="show"),
            html.Div(id="cart"),
            html.Div(id="status"),
        ]
    )


app.layout = layout


@user_callback(
    app,
    Output("cart", "children"),
    Input("add", "n_clicks"),
    State("item", "value"),
    prevent_initial_call=True,
)
def add(user: UserValues, _: int, item: str | None) -> str:
    """Put an item in this session's cart."""
    user["cart"] = [*user.get("cart", []), item or "?"]
    return "Cart: " + ", ".join(user["cart"])


@user_callback(
    app,
    Output("cart", "children", allow_duplicate=True),
    Input("show", "n_clicks"),
    prevent_initial_call=True,
)
def show(user: UserValues, _: int) -> str:
    """Show this session's cart."""
    return "Cart: " + ", ".join(user.get("cart", []))


@user_callback(
    app, Output("status", "children"), Input("login", "n_clicks"), prevent_initial_call=True
)
def login(user: UserValues, _: int) -> str:
    """After checking the password (not shown): a new session id, the same values."""
    rotate_session(user)  # an id seen before login is now worth nothing
    return "Logged in."


@user_callback(
    app,
    Output("status", "children", allow_duplicate=True),
    Input("logout", "n_clicks"),
    prevent_initial_call=True,
)
def logout(user: UserValues, _: int) -> str:
    """The session's values go, and the tab gets a fresh, empty session."""
    end_session(user)
    return "Logged out."


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=8050)
