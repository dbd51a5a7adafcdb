"""A chat whose answers stream word by word, each visitor's conversation kept on the server.

Needs Dash 4.5 (streaming callbacks) on its FastAPI backend::

    pip install ".[dash]" "dash[fastapi]==4.5.0rc2" && python examples/chat_app.py

then open http://127.0.0.1:8050. The "model" is a deterministic stand-in (no
network, no key): swap :func:`model_reply` for a real client's token stream.
Each browser tab has its own conversation; a reload keeps it; "Clear" ends
the session (its values go, and the tab starts a new one).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from dash import Dash, Input, Output, State, dcc, html

from dash_database import AsyncDashDatabase, AsyncUserValues
from dash_database.dash import end_session, init_app, session_store, user_callback

#: Seconds between two words of an answer, as a model would pace them.
WORD_SECONDS = float(os.environ.get("CHAT_WORD_SECONDS", "0.08"))

db = AsyncDashDatabase(os.environ.get("DASH_DATABASE_PATH"))
app = Dash(__name__, title="dash_database chat example", backend="fastapi")
init_app(app, db)


async def model_reply(message: str, turn: int) -> AsyncIterator[str]:
    """A stand-in for a language model: the same answer for the same message and turn,
    one word at a time."""
    words = f"Answer {turn}: you said {len(message.split())} words, the first being".split()
    for word in [*words, repr(message.split()[0] if message.split() else "")]:
        await asyncio.sleep(WORD_SECONDS)
        yield word


def layout() -> html.Div:
    """A function, so that each new browser tab gets a fresh session id."""
    return html.Div(
        [
            session_store(app),
            html.H1("Chat"),
            html.Div(id="conversation"),
            dcc.Input(id="message", placeholder="Say something", debounce=False),
            html.Button("Send", id="send"),
            html.Button("Clear", id="clear"),
            html.Div(id="size"),
        ]
    )


app.layout = layout


def render(history: list[dict[str, str]]) -> list[html.P]:
    """The conversation as paragraphs, one a message."""
    return [html.P(f"{turn['role']}: {turn['text']}", className=turn["role"]) for turn in history]


async def size_text(user: AsyncUserValues) -> str:
    """The bytes this session's values take on the server."""
    stats = await db.user_stats(user.user_id)
    return f"This conversation takes {stats.bytes:,} bytes on the server."


@user_callback(
    app,
    Output("conversation", "children"),
    Output("size", "children"),
    Output("message", "value"),
    Input("send", "n_clicks"),
    State("message", "value"),
)
async def chat(user: AsyncUserValues, clicks: int | None, message: str | None) -> Any:
    """On load, the conversation so far; on Send, the message and the answer, streamed."""
    history: list[dict[str, str]] = await user.get("history", [])
    if not clicks or not message:
        yield render(history), await size_text(user), message
        return
    history.append({"role": "you", "text": message})
    await user.set("history", history)  # kept even if the tab closes mid-answer
    answer: list[str] = []
    turn = sum(1 for entry in history if entry["role"] == "you")
    async for word in model_reply(message, turn):
        answer.append(word)
        yield render([*history, {"role": "model", "text": " ".join(answer)}]), "", ""
    history.append({"role": "model", "text": " ".join(answer)})
    await user.set("history", history)
    yield render(history), await size_text(user), ""


@user_callback(
    app,
    Output("conversation", "children", allow_duplicate=True),
    Output("size", "children", allow_duplicate=True),
    Input("clear", "n_clicks"),
    prevent_initial_call=True,
)
async def clear(user: AsyncUserValues, _: int) -> tuple[list[Any], str]:
    """Forget this conversation: the session's values go, and the tab gets a new session."""
    end_session(user)
    return [], "Cleared."


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=8050)
