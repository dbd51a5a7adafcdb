"""Dash helpers: one unguessable session id per browser tab, and that user's values in callbacks.

Needs the ``dash`` extra (``pip install "dash_database[dash]"``); ``import
dash_database`` alone never imports Dash. Typical use::

    db = DashDatabase()
    app = Dash(__name__)
    init_app(app, db)
    app.layout = lambda: html.Div([session_store(app), ...])

    @user_callback(app, Output("out", "children"), Input("button", "n_clicks"))
    def show(user: UserValues, n_clicks: int) -> str:
        return repr(user.get("value"))

Following Flask's extension rules, the functions take the app as an argument,
never keep a reference to it, and keep their per-app settings in
``app.server.extensions["dash_database"]``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from .database import DashDatabase
from .exceptions import DependencyMissingError, InvalidSessionIdError
from .sessions import check_session_id, new_session_id
from .user_values import UserValues

try:
    import flask
    from dash import State, dcc
except ImportError as exc:
    raise DependencyMissingError(
        'dash_database.dash needs Dash: pip install "dash_database[dash]" '
        '(from a clone: pip install ".[dash]")'
    ) from exc

__all__ = ["init_app", "session_state", "session_store", "user_callback", "user_values"]

logger = logging.getLogger("dash_database")

#: The key of this extension's settings in ``app.server.extensions``.
EXTENSION = "dash_database"

StorageType = Literal["session", "local"]
_STORAGE_TYPES = ("session", "local")

F = TypeVar("F", bound=Callable[..., Any])


class _DashApp(Protocol):
    # Only what the helpers use, so that any Dash version (or a test double) fits.
    server: flask.Flask

    def callback(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]: ...


@dataclass(frozen=True)
class SessionSettings:
    """What :func:`init_app` keeps for one app.

    :param db: where the users' values live.
    :param store_id: the component id of the ``dcc.Store`` holding the session id.
    :param storage_type: ``"session"``: one session per browser tab, kept across
        reloads; ``"local"``: one session per browser, shared by its tabs and
        kept after the browser closes.
    """

    db: DashDatabase
    store_id: str
    storage_type: StorageType


def init_app(
    app: _DashApp,
    db: DashDatabase,
    *,
    store_id: str = "dash-database-session",
    storage_type: StorageType = "session",
) -> None:
    """Register ``db`` as the place where ``app``'s sessions keep their values.

    :param app: the ``dash.Dash`` app.
    :param db: the database; under gunicorn, one on a shared file or Redis.
    :param store_id: the id of the ``dcc.Store`` made by :func:`session_store`.
    :param storage_type: ``"session"`` (default, one session per tab) or
        ``"local"`` (one per browser).
    :raises ValueError: unknown ``storage_type``.
    """
    if storage_type not in _STORAGE_TYPES:
        raise ValueError(f"storage_type must be 'session' or 'local', not {storage_type!r}")
    if not isinstance(db, DashDatabase):
        raise TypeError(f"db must be a DashDatabase, not {type(db).__name__}")
    app.server.extensions[EXTENSION] = SessionSettings(db, store_id, storage_type)


def _settings(extensions: Mapping[str, Any]) -> SessionSettings:
    settings = extensions.get(EXTENSION)
    if not isinstance(settings, SessionSettings):
        raise RuntimeError("call dash_database.dash.init_app(app, db) before using the helpers")
    return settings


def session_store(app: _DashApp) -> dcc.Store:
    """Return the ``dcc.Store`` that gives each visitor a fresh session id.

    Put it in a layout *function* (``app.layout = layout``), so that each page
    load makes a new id; the browser keeps its first one across reloads.
    """
    settings = _settings(app.server.extensions)
    # Dash also calls layout functions outside any request, to validate them;
    # a static layout is built that way too. Only a page request gets an id, so
    # a static layout fails loudly in user_values instead of sharing one id.
    session_id = new_session_id() if flask.has_request_context() else None
    return dcc.Store(id=settings.store_id, data=session_id, storage_type=settings.storage_type)


def session_state(app: _DashApp) -> State:
    """Return the ``State`` that passes the session id to a callback.

    For callbacks not made with :func:`user_callback` (``dash.callback`` in a
    multi-page app, for example); pass the id on to :func:`user_values`.
    """
    return State(_settings(app.server.extensions).store_id, "data")


def user_values(session_id: Any) -> UserValues:
    """Return the current request's user values, after checking the id the browser sent.

    Call it inside a callback of an app set up with :func:`init_app`.

    :raises ~dash_database.exceptions.InvalidSessionIdError: the id is missing,
        malformed or too long; nothing was read or written.
    :raises RuntimeError: called outside a request, or before :func:`init_app`.
    """
    if not flask.has_request_context():
        raise RuntimeError("user_values() works inside a Dash callback only")
    settings = _settings(flask.current_app.extensions)
    if session_id is None:
        raise InvalidSessionIdError(
            "the browser sent no session id: put session_store(app) in a layout function "
            "(app.layout = layout, not layout())"
        )
    try:
        checked = check_session_id(session_id)
    except InvalidSessionIdError:
        logger.warning("refused a malformed session id from %s", flask.request.remote_addr)
        raise
    return settings.db.user(checked)


def user_callback(app: _DashApp, *dependencies: Any, **options: Any) -> Callable[[F], F]:
    """Like ``app.callback``, with the session's :class:`UserValues` as first argument.

    Pass ``Output``, ``Input`` and ``State`` positionally, as to ``app.callback``;
    the session's ``State`` is added for you.

    :param app: the ``dash.Dash`` app, set up with :func:`init_app`.
    :param options: passed to ``app.callback`` (``prevent_initial_call``...).
    :raises TypeError: ``inputs=``, ``state=`` or ``output=`` given by keyword.
    """
    grouped = {"output", "inputs", "state"} & options.keys()
    if grouped:
        raise TypeError(
            f"user_callback takes dependencies positionally; got {', '.join(sorted(grouped))}="
        )
    state = session_state(app)

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def with_user(*values: Any) -> Any:
            *values_, session_id = values
            return func(user_values(session_id), *values_)

        app.callback(*dependencies, state, **options)(with_user)
        return func

    return decorate
