"""The contract against a model: random runs of store, update, delete, rename, get, list and
the passing of time agree with a dict of dicts, on every engine, without and with a
``secret_key``, under a quota and with expiry."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from dash_database import DashDatabase
from dash_database.exceptions import QuotaExceededError, UserExistsError

from helpers import KEY, Clock, OpenDb

USERS = st.sampled_from(["alice", "bob", 1, "1"])
KEYS = st.sampled_from(["cart", 2, "2"])
VALUES = st.one_of(st.integers(), st.lists(st.integers(), max_size=3), st.text(max_size=5))
#: The stores' quota (of the three key names, a user may hold two) and expiry.
MAX_KEYS, EXPIRE_AFTER = 2, 100.0
#: What time may do between two steps: a second (no one expires, within a run's steps), or
#: far past the expiry (everyone does), so that the model never guesses at the boundary.
WAITS = st.sampled_from([1.0, 10 * EXPIRE_AFTER])


def machine_for(db: DashDatabase, clock: Clock) -> type[RuleBasedStateMachine]:
    """A state machine that drives ``db`` (emptied first) and a model side by side."""

    class Store(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            for user in db.list_users():
                db.delete_all_user_values(user)
            self.model: dict[Any, dict[Any, Any]] = {}

        def refused(self, user: Any, key: Any) -> bool:
            """Whether a write of a new key passes the quota (then it must be refused)."""
            values = self.model.get(user, {})
            return key not in values and len(values) >= MAX_KEYS

        @rule(user=USERS, key=KEYS, value=VALUES)
        def store(self, user: Any, key: Any, value: Any) -> None:
            if self.refused(user, key):
                with pytest.raises(QuotaExceededError):
                    db.store_user_value(user, key, value)
                return
            db.store_user_value(user, key, value)
            self.model.setdefault(user, {})[key] = value

        @rule(user=USERS, key=KEYS)
        def update(self, user: Any, key: Any) -> None:
            if self.refused(user, key):
                with pytest.raises(QuotaExceededError):
                    db.update_user_value(user, key, lambda old: [old], default=0)
                return
            new = db.update_user_value(user, key, lambda old: [old], default=0)
            assert new == [self.model.get(user, {}).get(key, 0)]
            self.model.setdefault(user, {})[key] = new

        @rule(user=USERS, key=KEYS)
        def delete(self, user: Any, key: Any) -> None:
            db.delete_user_value(user, key)
            self.model.get(user, {}).pop(key, None)
            if not self.model.get(user):
                self.model.pop(user, None)

        @rule(old=USERS, new=USERS)
        def rename(self, old: Any, new: Any) -> None:
            if old == new and type(old) is type(new):
                with pytest.raises(ValueError, match="pass a new id"):
                    db.rename_user(old, new)
            elif self.model.get(new):
                with pytest.raises(UserExistsError):
                    db.rename_user(old, new)
            else:
                assert db.rename_user(old, new) == len(self.model.get(old, {}))
                if old in self.model:
                    self.model[new] = self.model.pop(old)

        @rule(seconds=WAITS)
        def wait(self, seconds: float) -> None:
            clock.now += seconds
            if seconds > EXPIRE_AFTER:
                self.model.clear()  # every user expired: invisible at once

        @rule(user=USERS, key=KEYS)
        def get(self, user: Any, key: Any) -> None:
            assert db.get_user_value(user, key, "absent") == self.model.get(user, {}).get(
                key, "absent"
            )

        @invariant()
        def lists_agree(self) -> None:
            assert sorted(map(repr, db.list_users())) == sorted(map(repr, self.model))
            for user, values in self.model.items():
                assert sorted(map(repr, db.list_stored_user_keys(user))) == sorted(
                    map(repr, values)
                )

    return Store


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
def test_random_runs_agree_with_a_dict_model(open_db: OpenDb, clock: Clock, signed: bool) -> None:
    """Every step of every run reads back what a dict of dicts would hold."""
    options: dict[str, Any] = {"max_keys_per_user": MAX_KEYS, "expire_after": EXPIRE_AFTER}
    db = open_db(secret_key=KEY, **options) if signed else open_db(**options)
    run_state_machine_as_test(
        machine_for(db, clock),
        settings=settings(max_examples=25, stateful_step_count=15, deadline=None),
    )
