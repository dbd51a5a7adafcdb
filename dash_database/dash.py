"""Dash helpers: one unguessable session id per browser tab, and that session's values in callbacks.

Needs the ``dash`` extra (``pip install "dash_database[dash]"``); ``import
dash_database`` alone never imports Dash. Works on Dash's Flask, FastAPI and
Quart backends, with sync and ``async def`` callbacks::

    db = DashDatabase()
    app = Dash(__name__)
    init_app(app, db)
    app.layout = lambda: html.Div([session_store(app), ...])

    @user_callback(app, Output("out", "children"), Input("button", "n_clicks"))
    def show(user: UserValues, n_clicks: int) -> str:
        return repr(user.get("value"))

The helpers keep no reference to an app: its settings live in a weak mapping
keyed by the app, looked up on each call, so two apps in one process keep
apart, and nothing is stored on the server object (which is not Flask on
every backend).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .async_database import AsyncDashDatabase
from .async_user_values import AsyncUserValues, AsyncValueStore
from .database import DashDatabase
from .exceptions import DependencyMissingError, InvalidSessionIdError
from .sessions import SESSION_ID_PATTERN, check_session_id, new_session_id
from .shared.available import SharedStorage
from .user_values import UserValues

try:
    import dash
    from dash import Input, Output, State, dcc
    from dash.exceptions import PreventUpdate
except ImportError as exc:
    raise DependencyMissingError(
        'dash_database.dash needs Dash: pip install "dash_database[dash]" '
        '(from a clone: pip install ".[dash]")'
    ) from exc

__all__ = [
    "NewSessionId",
    "SessionIdRefused",
    "SharedStorage",
    "async_user_values",
    "end_session",
    "init_app",
    "rotate_session",
    "session_state",
    "session_store",
    "user_callback",
    "user_values",
]

logger = logging.getLogger("dash_database")

#: The component id of the session store, unless ``init_app`` is told otherwise.
DEFAULT_STORE_ID = "dash-database-session"

StorageType = Literal["session", "local"]
_STORAGE_TYPES = ("session", "local")

F = TypeVar("F", bound=Callable[..., Any])

# Runs in the browser when the page loads: an id that is missing or was edited
# into something malformed is replaced with a fresh one (256 bits from the
# browser's CSPRNG), which the store then keeps, so the tab heals.
_HEAL_JS = f"""
function (sessionId) {{
    if (typeof sessionId === "string" && /^{SESSION_ID_PATTERN}$/.test(sessionId)) {{
        return window.dash_clientside.no_update;
    }}
    const bytes = new Uint8Array(32);
    window.crypto.getRandomValues(bytes);
    return btoa(String.fromCharCode.apply(null, bytes))
        .replace(/[+]/g, "-").replace(/[/]/g, "_").replace(/=+$/, "");
}}
"""


class SessionIdRefused(InvalidSessionIdError, PreventUpdate):
    """A callback received a missing or malformed session id: it changes nothing.

    Dash answers it as ``PreventUpdate`` (no update, no traceback); the page's
    next load replaces the id with a fresh one.
    """

    def __init__(self, message: str) -> None:
        InvalidSessionIdError.__init__(self, message)


@dataclass(frozen=True)
class SessionSettings:
    """What :func:`init_app` keeps for one app.

    :param db: where the sessions' values live (either face).
    :param store_id: the component id of the ``dcc.Store`` holding the session id.
    :param storage_type: ``"session"``: one session per browser tab, kept across
        reloads; ``"local"``: one session per browser, shared by its tabs and
        kept after the browser closes.
    """

    db: DashDatabase | AsyncDashDatabase
    store_id: str
    storage_type: StorageType
    #: The async face for ``async def`` callbacks: :attr:`db`, or its engine on a thread.
    async_db: AsyncDashDatabase = field(init=False, compare=False)

    def __post_init__(self) -> None:
        db = self.db
        face = db if isinstance(db, AsyncDashDatabase) else AsyncDashDatabase._over(db)
        object.__setattr__(self, "async_db", face)

    @property
    def sync_db(self) -> DashDatabase:
        """The sync face of :attr:`db`, for sync callbacks."""
        return self.db.sync if isinstance(self.db, AsyncDashDatabase) else self.db


# Settings per app; an app that is garbage-collected takes its settings along.
_SETTINGS: weakref.WeakKeyDictionary[Any, SessionSettings] = weakref.WeakKeyDictionary()

# A callback over WebSocket (Dash 4.2+) runs with no request, so no address: Dash
# shows the peer only to its ``websocket_connect`` hooks. One, registered once per
# process, keeps it here; it runs in the connection handler's own context, which
# every callback dispatched from that connection copies (a task, or a worker thread).
_WEBSOCKET_PEER: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "dash_database_websocket_peer", default=None
)
_peer_hook_registered = False


def _remember_peer(websocket: Any) -> bool:
    """A ``websocket_connect`` hook that admits every connection and notes its peer's host
    (Starlette's ``websocket.client``, Quart's ``websocket.remote_addr``)."""
    client = getattr(websocket, "client", None)
    host = getattr(client, "host", None) if client is not None else None
    _WEBSOCKET_PEER.set(host or getattr(websocket, "remote_addr", None))
    return True


def _register_peer_hook() -> None:
    global _peer_hook_registered
    hooks: Any = getattr(dash, "hooks", None)  # Dash 3.0 and later
    if not _peer_hook_registered and hasattr(hooks, "websocket_connect"):  # Dash 4.2 and later
        hooks.websocket_connect()(_remember_peer)
        _peer_hook_registered = True


def init_app(
    app: Any,
    db: DashDatabase | AsyncDashDatabase,
    *,
    store_id: str = DEFAULT_STORE_ID,
    storage_type: StorageType = "session",
) -> None:
    """Register ``db`` as the place where ``app``'s sessions keep their values.

    :param app: the ``dash.Dash`` app, on any backend.
    :param db: a :class:`DashDatabase` or an :class:`AsyncDashDatabase`; under
        several workers, one on a shared file or Redis.
    :param store_id: the id of the ``dcc.Store`` made by :func:`session_store`
        (page modules that run before ``init_app`` use the default).
    :param storage_type: ``"session"`` (default, one session per tab) or
        ``"local"`` (one per browser).
    :raises ValueError: unknown ``storage_type``.
    :raises TypeError: ``db`` is neither face.
    """
    if storage_type not in _STORAGE_TYPES:
        raise ValueError(f"storage_type must be 'session' or 'local', not {storage_type!r}")
    if not isinstance(db, (DashDatabase, AsyncDashDatabase)):
        raise TypeError(f"db must be a DashDatabase or AsyncDashDatabase, not {type(db).__name__}")
    first = app not in _SETTINGS
    _SETTINGS[app] = SessionSettings(db, store_id, storage_type)
    _register_peer_hook()
    if first:
        app.clientside_callback(_HEAL_JS, Output(store_id, "data"), Input(store_id, "data"))


def _current_app() -> Any:
    """The app of the callback or layout being run (Dash's own answer, for page modules)."""
    return dash.get_app()  # type: ignore[no-untyped-call]  # untyped in Dash


def _settings(app: Any) -> SessionSettings:
    settings = _SETTINGS.get(app if app is not None else _current_app())
    if settings is None:
        raise RuntimeError("call dash_database.dash.init_app(app, db) before using the helpers")
    return settings


def _in_request(app: Any) -> bool:
    backend = getattr(app, "backend", None)
    if backend is not None:  # Dash 4.2+: the backend knows, whichever it is
        return bool(backend.has_request_context())
    import flask  # Dash before 4.2 runs on Flask only

    return flask.has_request_context()


def session_store(app: Any = None) -> dcc.Store:
    """Return the ``dcc.Store`` that gives each visitor a session id.

    Put it in a layout *function* (``app.layout = layout``), so that each page
    load makes a new id; the browser keeps its first one across reloads. A
    missing or edited id is replaced in the browser when the page loads.

    :param app: the app; ``None`` in a page module means the current app.
    """
    app = app if app is not None else _current_app()
    settings = _settings(app)
    # Dash also calls layout functions outside any request, to validate them;
    # a static layout is built that way too: the browser then makes the id.
    session_id = new_session_id() if _in_request(app) else None
    return dcc.Store(id=settings.store_id, data=session_id, storage_type=settings.storage_type)


def session_state(app: Any = None) -> State:
    """Return the ``State`` that passes the session id to a callback.

    For callbacks not made with :func:`user_callback`; pass the id on to
    :func:`user_values` or :func:`async_user_values`.

    :param app: the app; ``None`` (a page module) uses its settings once
        :func:`init_app` ran, else the default store id.
    """
    settings = _SETTINGS.get(app) if app is not None else None
    if app is not None and settings is None:
        raise RuntimeError("call dash_database.dash.init_app(app, db) before using the helpers")
    return State(settings.store_id if settings else DEFAULT_STORE_ID, "data")


def _checked(session_id: Any, app: Any) -> str:
    """The session id, or :class:`SessionIdRefused` after one warning line."""
    try:
        return check_session_id(session_id)
    except InvalidSessionIdError as exc:
        where = None
        if _in_request(app):
            backend = getattr(app, "backend", None)
            if backend is not None:
                where = backend.request_adapter().remote_addr
        else:
            where = _WEBSOCKET_PEER.get()
            where = where and f"{where} (WebSocket)"
        where = where or "an unknown address"
        why = "no session id" if session_id is None else "a malformed session id"
        logger.warning("refused a callback from %s: %s; nothing was read or written", where, why)
        raise SessionIdRefused(str(exc)) from None


def user_values(session_id: Any, app: Any = None) -> UserValues:
    """Return the session's values as a dict-like view, after checking the id the browser sent.

    :param session_id: the value of :func:`session_state`.
    :param app: the app (default: the current one).
    :raises SessionIdRefused: the id is missing or malformed (an
        ``InvalidSessionIdError`` that Dash answers as ``PreventUpdate``).
    :raises RuntimeError: the app was not set up with :func:`init_app`.
    """
    app = app if app is not None else _current_app()
    settings = _settings(app)
    return settings.sync_db.user(_checked(session_id, app))


def async_user_values(session_id: Any, app: Any = None) -> AsyncUserValues:
    """Like :func:`user_values`, for ``async def`` callbacks: ``await user.get(...)``."""
    app = app if app is not None else _current_app()
    settings = _settings(app)
    return _SessionValues(settings.async_db, _checked(session_id, app))


class _SessionValues(AsyncUserValues):
    """A session's values in an ``async def`` callback: each call first waits for the
    session's rotation or ending that the callback started (see :func:`rotate_session`)."""

    async def _ready(self) -> AsyncValueStore:
        await _settled(_PENDING.get())
        return self._db


# What rotate_session and end_session started in this callback and that it has not
# awaited: the callback's wrapper awaits it before Dash sends the response. A list,
# shared by the tasks the callback starts (each copies the context, not the list).
_PENDING: contextvars.ContextVar[list[asyncio.Task[None]] | None] = contextvars.ContextVar(
    "dash_database_pending", default=None
)
# Tasks started outside user_callback, kept until done (the loop keeps only weak ones).
_UNWATCHED: set[asyncio.Task[None]] = set()


async def _settled(pending: list[asyncio.Task[None]] | None) -> None:
    """Wait for the session changes a callback started (``pending``)."""
    while pending:
        await pending.pop(0)


async def _next_frame(stream: AsyncIterator[Any], pending: list[asyncio.Task[None]]) -> Any:
    """The stream's next frame, made with ``pending`` as the changes' list. Set and reset in
    this one step: Dash may run each step of a stream in another context."""
    token = _PENDING.set(pending)
    try:
        return await anext(stream)
    finally:
        _PENDING.reset(token)


class NewSessionId(str):
    """The new session id that :func:`rotate_session` and :func:`end_session` return.

    In an ``async def`` callback the store's change runs on the event loop, never
    blocking it, and is done before the callback's response is sent, or before the
    session's values are next used; ``await`` the id to wait for it there and then.
    """

    _change: asyncio.Task[None] | None = None

    def __await__(self) -> Generator[Any, None, str]:
        if self._change is not None:
            yield from self._change.__await__()
        return str(self)


def _change_session(
    user: UserValues | AsyncUserValues,
    app: Any,
    sync: Callable[[DashDatabase, str], object],
    change: Callable[[AsyncDashDatabase, str], Awaitable[object]],
) -> NewSessionId:
    """Give the browser a new session id after ``sync`` (a sync callback's ``user``) or
    ``change`` (an async one's, started now on the loop)."""
    settings = _settings(app)
    new_id = NewSessionId(new_session_id())
    if isinstance(user, AsyncUserValues):
        work = change(settings.async_db, new_id)
        task = asyncio.get_running_loop().create_task(_awaited(work))
        pending = _PENDING.get()
        if pending is None:
            _UNWATCHED.add(task)
            task.add_done_callback(_UNWATCHED.discard)
        else:
            pending.append(task)
        new_id._change = task
    else:
        sync(settings.sync_db, new_id)
    dash.set_props(settings.store_id, {"data": new_id})
    return new_id


async def _awaited(awaitable: Awaitable[object]) -> None:
    await awaitable


def rotate_session(user: UserValues | AsyncUserValues, app: Any = None) -> NewSessionId:
    """Give the browser a new session id and move the session's values to it (call at login).

    An id seen before login, in a shared browser or a leaked URL, is then worth
    nothing. Call it inside a callback; use the returned id's values from then
    on (``user`` still names the old one, which holds nothing once the move is done).
    In an ``async def`` callback the move runs on the event loop, and is done before
    the response is sent; ``await rotate_session(user)`` waits for it there.

    :param user: the session's values, as the callback got them.
    :param app: the app (default: the current one).
    :returns: the new session id.
    """
    old_id = user.user_id
    return _change_session(
        user,
        app,
        lambda db, new_id: db.rename_user(old_id, new_id),
        lambda db, new_id: db.rename_user(old_id, new_id),
    )


def end_session(user: UserValues | AsyncUserValues, app: Any = None) -> NewSessionId:
    """Delete the session's values and give the browser a fresh, empty session (at logout).

    In an ``async def`` callback the delete runs as :func:`rotate_session`'s move does.

    :returns: the new session id.
    """
    old_id = user.user_id
    return _change_session(
        user,
        app,
        lambda db, _: db.delete_all_user_values(old_id),
        lambda db, _: db.delete_all_user_values(old_id),
    )


def _is_app(candidate: Any) -> bool:
    return hasattr(candidate, "callback") and hasattr(candidate, "layout")


def user_callback(*args: Any, **options: Any) -> Callable[[F], F]:
    """Like ``app.callback``, with the session's values as the callback's first argument.

    ``user_callback(app, Output(...), Input(...))``, or in a page module, where
    ``app`` cannot be imported, ``user_callback(Output(...), Input(...))``
    (``dash.callback``). A sync callback gets a :class:`UserValues`; an
    ``async def`` one, and a streaming one (an ``async def`` generator, Dash 4.5),
    an :class:`AsyncUserValues`, whatever the face of the db. Each write is
    committed when it is made, so a stream's writes between yields are kept even
    if the stream is cut short.
    Pass ``Output``, ``Input`` and ``State`` positionally; the session's
    ``State`` is added for you.

    :param options: passed to ``app.callback`` (``prevent_initial_call``,
        ``background``...).
    :raises TypeError: ``inputs=``, ``state=`` or ``output=`` given by keyword.
    """
    grouped = {"output", "inputs", "state"} & options.keys()
    if grouped:
        raise TypeError(
            f"user_callback takes dependencies positionally; got {', '.join(sorted(grouped))}="
        )
    app = args[0] if args and _is_app(args[0]) else None
    dependencies = args[1:] if app is not None else args
    state = session_state(app)
    register = app.callback if app is not None else dash.callback
    # A weak reference: the callback must not keep the app alive.
    app_ref = weakref.ref(app) if app is not None else (lambda: None)

    def decorate(func: F) -> F:
        # Dash streams a callback whose registered function is itself an async
        # generator function (Dash 4.5), so the wrapper keeps the kind it wraps.
        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            async def with_streaming_user(*values: Any) -> AsyncIterator[Any]:
                *values_, session_id = values
                stream = func(async_user_values(session_id, app_ref()), *values_)
                pending: list[asyncio.Task[None]] = []
                try:
                    while True:
                        try:
                            frame = await _next_frame(stream, pending)
                        except StopAsyncIteration:
                            break
                        await _settled(pending)  # a rotation, done before the frame is sent
                        yield frame
                    await _settled(pending)
                finally:
                    # A stream cut short (the tab closed): the writes made so far are
                    # committed; the user's generator gets to run its own cleanup.
                    await stream.aclose()

            register(*dependencies, state, **options)(with_streaming_user)
        elif inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def with_async_user(*values: Any) -> Any:
                *values_, session_id = values
                pending: list[asyncio.Task[None]] = []
                token = _PENDING.set(pending)
                try:
                    result = await func(async_user_values(session_id, app_ref()), *values_)
                finally:
                    _PENDING.reset(token)
                await _settled(pending)  # rotate_session's move, done before the response
                return result

            register(*dependencies, state, **options)(with_async_user)
        else:

            @functools.wraps(func)
            def with_user(*values: Any) -> Any:
                *values_, session_id = values
                return func(user_values(session_id, app_ref()), *values_)

            register(*dependencies, state, **options)(with_user)
        return func

    return decorate
