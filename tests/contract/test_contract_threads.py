"""The contract: one database shared by many threads, on every engine."""

from __future__ import annotations

import random
import threading

from dash_database import DashDatabase


def test_16_threads_x_500_mixed_operations(db: DashDatabase) -> None:
    """16 threads each on its own user end equal to a model, with no exception."""
    errors: list[BaseException] = []
    models: dict[int, dict[int, int]] = {}
    shared_increments: dict[int, int] = {}

    def work(user: int) -> None:
        rng = random.Random(user)
        model: dict[int, int] = {}
        increments = 0
        try:
            for step in range(500):
                key = rng.randrange(8)
                action = rng.random()
                if action < 0.4:
                    db.store_user_value(user, key, step)
                    model[key] = step
                elif action < 0.6:
                    assert db.get_user_value(user, key) == model.get(key)
                elif action < 0.7:
                    db.delete_user_value(user, key)
                    model.pop(key, None)
                elif action < 0.8:
                    db.update_user_value("shared", "counter", lambda n: n + 1, default=0)
                    increments += 1
                elif action < 0.9:
                    assert db.list_stored_user_keys(user) == sorted(model)
                else:
                    db.update_user_value(user, key, lambda n: n + 1, default=0)
                    model[key] = model.get(key, 0) + 1
            models[user] = model
            shared_increments[user] = increments
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(user,)) for user in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(models) == 16
    for user, model in models.items():
        assert dict(db.user(user)) == model
    assert db.get_user_value("shared", "counter", 0) == sum(shared_increments.values())
