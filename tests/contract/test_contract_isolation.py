"""Isolation: what each user can list, read, update and delete equals a dict-of-dicts model."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from dash_database import DashDatabase
from dash_database.backends.sqlite.schema import record_key, user_range
from dash_database.keys import Key, decode_key, encode_key

from helpers import open_backend, server_url

# Strings that broke 1.0's "f'{user_id}_{key_name}'" keys, JSON and SQL ranges:
# separators, quotes, escapes, NUL, prefixes of each other, and digits that
# look like ints.
ADVERSARIAL = [
    "",
    "_",
    "1",
    "12",
    "1_2",
    "2_x",
    "x1_y",
    "\x00",
    "a\x00b",
    '"',
    "\\",
    "[",
    ",",
    "-",
    "/",
    ":",
    "%",
    "'",
    "ü",
    "𝄞",
    " ",
    "1,",
    '1"',
    "[1,",
    "null",
    "true",
]

keys: st.SearchStrategy[Key] = st.one_of(
    st.sampled_from(ADVERSARIAL),
    st.text(max_size=6),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-3, max_value=13),
)
values = st.one_of(
    st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers(), max_size=3)
)


def sort_model(keys_: Any) -> list[Key]:
    """The documented listing order: ints numerically, then strs by code point."""
    return sorted(keys_, key=lambda k: (isinstance(k, str), k))


class IsolationMachine(RuleBasedStateMachine):
    """Random operations on one database and on a plain dict of dicts, compared after each."""

    backend = "sqlite-memory"
    server_url = ""
    users = Bundle("users")

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.db: DashDatabase = open_backend(self.backend, Path(self.tmp.name), self.server_url)
        self.model: dict[Key, dict[Key, Any]] = {}

    @initialize(target=users, user=keys)
    def first_user(self, user: Key) -> Key:
        return user

    @rule(target=users, user=keys)
    def new_user(self, user: Key) -> Key:
        return user

    @rule(user=users, key=keys, value=values)
    def store(self, user: Key, key: Key, value: Any) -> None:
        self.db.store_user_value(user, key, value)
        self.model.setdefault(user, {})[key] = value

    @rule(user=users, key=keys)
    def get(self, user: Key, key: Key) -> None:
        missing = object()
        assert self.db.get_user_value(user, key, missing) == self.model.get(user, {}).get(
            key, missing
        )

    @rule(user=users, key=keys)
    def delete(self, user: Key, key: Key) -> None:
        self.db.delete_user_value(user, key)
        self.model.get(user, {}).pop(key, None)

    @rule(user=users)
    def delete_all(self, user: Key) -> None:
        self.db.delete_all_user_values(user)
        self.model.pop(user, None)

    @rule(user=users, key=keys)
    def update(self, user: Key, key: Key) -> None:
        new = self.db.update_user_value(user, key, lambda old: [old], default="d")
        expected = [self.model.get(user, {}).get(key, "d")]
        assert new == expected
        self.model.setdefault(user, {})[key] = expected

    @rule(user=users, key=keys)
    def contains(self, user: Key, key: Key) -> None:
        assert (key in self.db.user(user)) == (key in self.model.get(user, {}))

    @invariant()
    def listings_match(self) -> None:
        for user in list(self.model):
            stored = self.model[user]
            assert self.db.list_stored_user_keys(user) == sort_model(stored)
            assert len(self.db.user(user)) == len(stored)
        assert self.db.list_users() == sort_model(u for u, kv in self.model.items() if kv)

    def teardown(self) -> None:
        self.db.close()
        self.tmp.cleanup()


def test_isolation_matches_dict_of_dicts(backend_name: str, request: pytest.FixtureRequest) -> None:
    """For any ids and key names, every operation equals the dict-of-dicts model."""
    backend = backend_name
    attributes = {"backend": backend, "server_url": server_url(backend, request)}
    machine = type(f"Isolation_{backend}", (IsolationMachine,), attributes)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=60 if backend == "sqlite-memory" else 25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_defects_of_1_0_are_gone(db: DashDatabase) -> None:
    """Each collision reproduced on 1.0 now keeps the users apart."""
    db.store_user_value(12, "secret", "of 12")
    db.store_user_value("1_2", "x", "of '1_2'")
    db.store_user_value(1, "x1_y", "of 1")
    assert db.list_stored_user_keys(1) == ["x1_y"]
    assert db.get_user_value(1, "2_x") is None
    db.delete_all_user_values(1)
    assert db.get_user_value(12, "secret") == "of 12"
    assert db.get_user_value("1_2", "x") == "of '1_2'"
    db.store_user_value(123, "k", "int")
    db.store_user_value("123", "k", "str")
    assert db.get_user_value(123, "k") == "int"
    assert db.get_user_value("123", "k") == "str"
    assert db.list_stored_user_keys("x") == []


@given(keys, keys)
def test_storage_keys_are_the_json_of_the_pair(user_id: Key, key_name: Key) -> None:
    """The fast key encoding writes exactly what json.dumps writes, for any ids."""
    assert encode_key(user_id) == json.dumps(user_id)
    assert decode_key(encode_key(user_id)) == user_id
    assert decode_key(encode_key(user_id).encode()) == user_id
    assert record_key(user_id, key_name) == json.dumps([user_id, key_name], separators=(",", ":"))
    low, high = user_range(user_id)
    assert low <= record_key(user_id, key_name) < high
