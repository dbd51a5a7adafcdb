"""The layout holds (no import loop, decisions apart from engines), and old stores open."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import dash_database
from dash_database import DashDatabase, Stats

from helpers import Clock, assert_counters_exact

ROOT = Path(__file__).resolve().parent.parent


def load_checker() -> ModuleType:
    """The layout checker script, tools/check_layout.py, as a module."""
    spec = importlib.util.spec_from_file_location("check_layout", ROOT / "tools/check_layout.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_layout"] = module
    spec.loader.exec_module(module)
    return module


def test_the_package_passes_the_layout_check() -> None:
    """No import loop, thin __init__ files, and activity, quotas and records import no engine."""
    assert load_checker().main() == 0


def test_activity_neither_imports_nor_calls_an_engine() -> None:
    """The activity module names no engine: it decides, and the engines apply (the layout
    check proves it imports none; nothing in it is an engine method's name either)."""
    text = (ROOT / "dash_database" / "activity.py").read_text(encoding="utf-8")
    assert "backends" not in text.split('"""', 2)[2]  # past the module docstring
    for call in ("backend.", "engine.", ".mark_seen(", ".delete_idle_user(", ".idle_users("):
        assert call not in text


def test_the_layout_check_finds_an_import_loop() -> None:
    """The loop finder reports a loop of three modules, and none in a tree."""
    checker = load_checker()
    assert checker.find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert checker.find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_a_store_written_by_2_0_opens_and_reads_the_same(tmp_path: Path) -> None:
    """A file (with a side file) written by dash_database 2.0 reads back every value."""
    shutil.copy(ROOT / "tests/data/store-2.0.db", tmp_path / "store.db")
    shutil.copytree(ROOT / "tests/data/store-2.0.db-values", tmp_path / "store.db-values")
    with DashDatabase(tmp_path / "store.db") as db:
        assert db.list_users() == [42, "alice"]
        assert db.get_user_value("alice", "greeting") == "hello"
        assert db.get_user_value("alice", 7) == {"a": [1, 2.5, None], "t": (1, 2)}
        assert db.get_user_value(42, "big") == b"x" * 5000
        assert db.get_user_value(42, "42") == "str key"
        db.store_user_value(42, "big", b"small now")  # the old side file goes
        assert list((tmp_path / "store.db-values").iterdir()) == []


def test_a_store_written_before_the_engine_contract_opens_reads_and_writes_the_same(
    tmp_path: Path, clock: Clock
) -> None:
    """A file written by main on 2026-12-06 (2.3.0 and this round's first changes) reads
    back every value, size and activity, and takes writes with exact counters."""
    shutil.copy(ROOT / "tests/data/store-2026-12-06-main.db", tmp_path / "store.db")
    shutil.copytree(
        ROOT / "tests/data/store-2026-12-06-main.db-values", tmp_path / "store.db-values"
    )
    with DashDatabase(tmp_path / "store.db") as db:
        assert db.list_users() == [7, "alice", "bob"]
        assert db.get_user_value("alice", "cart") == [1, 2]
        assert db.get_user_value("alice", "big") == b"x" * 70_000
        assert db.get_user_value(7, 7) == {"n": 7}
        assert db.stats() == Stats(users=3, keys=4, bytes=70_073)
        assert db.inspect.last_activity("bob") == 1_800_000_000.0
        db.store_user_value("alice", "big", b"small now")  # the old side file goes
        db.delete_user_value("bob", "cart")
        assert list((tmp_path / "store.db-values").iterdir()) == []
        assert_counters_exact(db)


def test_the_tests_import_the_installed_package() -> None:
    """Under CI the package comes from site-packages, so a module left out of it fails."""
    location = Path(dash_database.__file__).resolve()
    if os.environ.get("CI") == "true":
        assert ROOT not in location.parents, f"imported from the source tree: {location}"
    assert str(ROOT) not in [str(Path(entry or os.getcwd()).resolve()) for entry in sys.path]
