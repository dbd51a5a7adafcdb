"""The Dash helpers: session ids per tab, checked ids, and the user's values in callbacks."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dash_database import DashDatabase, UserValues, new_session_id
from dash_database.exceptions import DependencyMissingError, InvalidSessionIdError
from dash_database.sessions import check_session_id

from helpers import callback_body

dash = pytest.importorskip("dash", reason="the [dash] extra is not installed")

from dash import Dash, Input, Output, State, dcc, html  # noqa: E402

from dash_database import dash as helpers  # noqa: E402
from dash_database.dash import (  # noqa: E402
    DEFAULT_STORE_ID,
    SessionIdRefused,
    SessionSettings,
    async_user_values,
    init_app,
    session_state,
    session_store,
    user_callback,
    user_values,
)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dash_database"

MALFORMED_IDS: list[Any] = [
    "",
    "short",
    "a" * 21,
    "a" * 129,
    "x" * 100_000,
    "has space in it and is long enough",
    "../../../../etc/passwd/aaaaaaaaaaaa",
    '["other-user","value"]aaaaaaaaaaaaa',
    "é" * 30,
    "a" * 30 + "\n",
    42,
    3.5,
    ["a" * 30],
    {"id": "a" * 30},
    True,
]


@pytest.fixture
def db(file_db: DashDatabase) -> DashDatabase:
    """The helpers never reach into an engine, so one engine is enough: a SQLite file."""
    return file_db


def make_app(db: DashDatabase, **options: Any) -> Dash:
    """A two-callback app built with the helpers."""
    app = Dash(__name__)
    init_app(app, db, **options)
    app.layout = lambda: html.Div(
        [session_store(app), dcc.Input(id="value"), html.Div(id="stored"), html.Div(id="read")]
    )

    @user_callback(app, Output("stored", "children"), Input("value", "value"), State("value", "id"))
    def store(user: UserValues, value: str, component_id: str) -> str:
        user["value"] = value
        return f"stored {value} from {component_id}"

    @user_callback(app, Output("read", "children"), Input("read", "id"))
    def read(user: UserValues, _: str) -> str:
        return repr(user.get("value"))

    return app


def call(app: Dash, output: str, inputs: list[Any], state: list[Any], session_id: Any) -> Any:
    """POST one callback request, as the browser does; return the response."""
    state = [*state, ("dash-database-session", "data", session_id)]
    body = callback_body(output, inputs, state)
    return app.server.test_client().post("/_dash-update-component", json=body)


def store(app: Dash, session_id: Any, value: str) -> Any:
    """The store callback of make_app."""
    state = [("value", "id", "value")]
    return call(app, "stored.children", [("value", "value", value)], state, session_id)


def read(app: Dash, session_id: Any) -> Any:
    """The read callback of make_app."""
    return call(app, "read.children", [("read", "id", "read")], [], session_id)


def answer(response: Any) -> Any:
    """The one output's children of a successful callback response."""
    assert response.status_code == 200, response.get_data(as_text=True)
    return next(iter(response.get_json()["response"].values()))["children"]


def test_import_works_without_dash(tmp_path: Path) -> None:
    """``import dash_database`` never imports Dash; the helper module names the pip command."""
    script = (
        "import sys\n"
        "sys.modules['dash'] = None\n"  # makes `import dash` fail like a missing package
        "import dash_database\n"
        "assert 'dash' not in sys.modules or sys.modules['dash'] is None\n"
        "try:\n"
        "    import dash_database.dash\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout.startswith("DependencyMissingError ")
    assert 'pip install ".[dash]"' in done.stdout
    assert issubclass(DependencyMissingError, ImportError)


def test_each_session_reads_only_its_own_value(db: DashDatabase) -> None:
    """Callbacks get the sending session's values, and two sessions never mix."""
    app = make_app(db)
    alice, bob = new_session_id(), new_session_id()
    assert answer(store(app, alice, "a")) == "stored a from value"
    assert answer(store(app, bob, "b")) == "stored b from value"
    assert answer(read(app, alice)) == "'a'"
    assert answer(read(app, bob)) == "'b'"
    assert answer(read(app, new_session_id())) == "None"
    assert sorted(db.list_users()) == sorted([alice, bob])


@pytest.mark.parametrize("session_id", MALFORMED_IDS, ids=repr)
def test_malformed_ids_are_refused_before_storage(
    db: DashDatabase, session_id: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A malformed id changes nothing (no update), never reaches storage, and logs one line."""
    app = make_app(db)
    with caplog.at_level(logging.WARNING, logger="dash_database"):
        assert store(app, session_id, "x").status_code == 204
        assert read(app, session_id).status_code == 204
    assert db.list_users() == []
    refused = [r for r in caplog.records if "malformed session id" in r.getMessage()]
    assert len(refused) == 2  # one line per refused callback
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in refused)
    with pytest.raises(InvalidSessionIdError, match="new_session_id") as caught:
        check_session_id(session_id)
    assert isinstance(caught.value, ValueError)
    assert len(str(caught.value)) < 300  # a 100,000-character id is not echoed back


def test_a_missing_id_changes_nothing(db: DashDatabase, caplog: pytest.LogCaptureFixture) -> None:
    """A callback without a session id is no update, and says so in one log line."""
    app = make_app(db)
    with caplog.at_level(logging.WARNING, logger="dash_database"):
        assert store(app, None, "x").status_code == 204
    assert "no session id" in caplog.text
    with pytest.raises(InvalidSessionIdError, match="session id"):
        user_values(None, app)
    with pytest.raises(SessionIdRefused):
        async_user_values("forged", app)
    assert db.list_users() == []


def test_ids_made_by_new_session_id_pass_the_check() -> None:
    """Every id new_session_id() makes passes check_session_id unchanged."""
    for _ in range(200):
        session_id = new_session_id()
        assert check_session_id(session_id) == session_id


def test_session_store_gives_a_fresh_tab_scoped_id_per_page_load(db: DashDatabase) -> None:
    """Each page load gets a new valid id, in sessionStorage by default, localStorage on request."""
    app = make_app(db)
    with app.server.test_request_context():
        first, second = session_store(app), session_store(app)
    assert first.storage_type == "session"  # type: ignore[attr-defined]
    assert first.id == "dash-database-session"  # type: ignore[attr-defined]
    assert first.data != second.data  # type: ignore[attr-defined]
    assert check_session_id(first.data) == first.data  # type: ignore[attr-defined]
    layout = app.server.test_client().get("/_dash-layout").get_json()
    store_props = layout["props"]["children"][0]["props"]
    assert check_session_id(store_props["data"]) == store_props["data"]

    wide = Dash(__name__)
    init_app(wide, db, storage_type="local", store_id="sid")
    with wide.server.test_request_context():
        assert (session_store(wide).storage_type, session_store(wide).id) == ("local", "sid")  # type: ignore[attr-defined]
    assert session_state(wide).component_id == "sid"


def test_outside_a_request_the_store_has_no_id(db: DashDatabase) -> None:
    """Built outside a page request (a static layout), the store holds no id to share."""
    app = make_app(db)
    assert session_store(app).data is None  # type: ignore[attr-defined]


def test_two_apps_in_one_process_keep_their_own_databases(tmp_path: Path) -> None:
    """Settings are per app and looked up per call: each app's callbacks use its own db."""
    with (
        DashDatabase(tmp_path / "one.sqlite3") as one,
        DashDatabase(tmp_path / "two.sqlite3") as two,
    ):
        first, second = make_app(one), make_app(two)
        session = new_session_id()
        assert answer(store(first, session, "in one")) == "stored in one from value"
        assert answer(read(second, session)) == "None"
        assert one.get_user_value(session, "value") == "in one"
        assert two.list_users() == []
        assert "dash_database" not in first.server.extensions  # nothing Flask-only is kept


def test_settings_keep_no_reference_to_the_app(db: DashDatabase) -> None:
    """An app that goes away takes its settings along."""
    app = make_app(db)
    settings = helpers._SETTINGS[app]
    assert settings == SessionSettings(db, DEFAULT_STORE_ID, "session")
    assert not any(isinstance(v, Dash) for v in vars(settings).values())
    gc.collect()
    count = len(helpers._SETTINGS)
    del app
    Dash(__name__)  # Dash itself keeps the latest app (dash.get_app()); make it another one
    gc.collect()
    assert len(helpers._SETTINGS) == count - 1


def test_helper_misuse_errors_say_what_to_do(db: DashDatabase) -> None:
    """Bad arguments and calls out of order raise errors naming the fix."""
    app = Dash(__name__)
    with pytest.raises(RuntimeError, match="init_app"):
        session_store(app)
    with pytest.raises(ValueError, match="storage_type"):
        init_app(app, db, storage_type="cookie")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="db must be a DashDatabase"):
        init_app(app, "db.sqlite")  # type: ignore[arg-type]
    init_app(app, db)
    with pytest.raises(TypeError, match="positionally"):
        user_callback(app, output=Output("a", "children"), inputs=Input("b", "id"))
    other = Dash(__name__)
    with pytest.raises(RuntimeError, match="init_app"):
        user_values(new_session_id(), other)
    with pytest.raises(RuntimeError, match="init_app"):
        session_state(other)


def test_the_library_logs_to_one_logger() -> None:
    """Every module that logs uses the "dash_database" logger (ruff's T20 forbids print)."""
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "getLogger" in text:
            assert 'getLogger("dash_database")' in text, path


def test_readme_walkthrough_runs_and_is_short() -> None:
    """The README's Dash walkthrough is under 40 lines and works as written."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## In a Dash app")[1]
    code = section.split("```python\n")[1].split("```")[0]
    assert len(code.splitlines()) < 40
    namespace: dict[str, Any] = {"__name__": "readme_walkthrough"}
    exec(compile(code, "README.md", "exec"), namespace)
    app, db = namespace["app"], namespace["db"]
    try:
        alice = new_session_id()
        greet = ("greeting.children", [("name", "value", "Alice")], [])  # type: ignore[var-annotated]
        assert answer(call(app, *greet, alice)) == "Hello Alice! (last time: None)"
        assert answer(call(app, *greet, alice)) == "Hello Alice! (last time: Alice)"
        assert answer(call(app, *greet, new_session_id())) == "Hello Alice! (last time: None)"
        assert call(app, *greet, "forged").status_code == 204
    finally:
        db.close()


def test_shared_storage_on_a_dash_without_it_names_the_dash_it_needs() -> None:
    """On a Dash without ``dash._shared_storage`` (before 4.5), dash_database.dash imports,
    and constructing SharedStorage raises DependencyMissingError naming the Dash needed."""
    script = (
        "import sys\n"
        "import dash\n"
        "sys.modules['dash._shared_storage.base'] = None  # as on Dash 4.4 and older\n"
        "from dash_database.dash import SharedStorage\n"
        "from dash_database.exceptions import DependencyMissingError\n"
        "try:\n"
        "    SharedStorage('x.sqlite3')\n"
        "except DependencyMissingError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "SharedStorage needs Dash 4.5 or later" in done.stdout
    assert 'pip install "dash>=4.5"' in done.stdout
