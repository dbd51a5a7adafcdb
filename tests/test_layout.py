"""The package's layout holds (small modules and classes, no import loop), and old stores open."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import dash_database
from dash_database import DashDatabase

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
    """No module over 400 lines, no class over 250, no import loop, thin __init__ files."""
    assert load_checker().main() == 0


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


def test_the_tests_import_the_installed_package() -> None:
    """Under CI the package comes from site-packages, so a module left out of it fails."""
    location = Path(dash_database.__file__).resolve()
    if os.environ.get("CI") == "true":
        assert ROOT not in location.parents, f"imported from the source tree: {location}"
    assert str(ROOT) not in [str(Path(entry or os.getcwd()).resolve()) for entry in sys.path]
