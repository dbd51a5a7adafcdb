"""What a forked child does with the stores its parent opened.

gunicorn ``--preload`` and ``multiprocessing`` fork processes that already
hold open stores. A child must not use its parent's SQLite connections (their
file locks belong to the parent) nor its locks (another thread may have held
one at the fork, and no thread in the child will release it). So each store
registers here, and after a fork the child calls its
:meth:`AfterFork.after_fork_in_child`. This is the package's only global
state, set up once at import.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol


class AfterFork(Protocol):
    """Something that makes itself usable again in a forked child."""

    def after_fork_in_child(self) -> None:
        """Replace what the fork made unusable; never touch the parent's resources."""


_LIVE: weakref.WeakSet[AfterFork] = weakref.WeakSet()
# Resources inherited from the parent stay referenced and unused: closing a
# SQLite connection's copy in the child can drop the child's own file locks.
_INHERITED: list[object] = []


def register(store: AfterFork) -> None:
    """Call ``store.after_fork_in_child()`` in every child forked from now on."""
    _LIVE.add(store)


def keep(resource: object) -> None:
    """Keep a resource inherited from the parent alive, unused, in this child."""
    _INHERITED.append(resource)


def _after_fork_in_child() -> None:
    for store in list(_LIVE):
        store.after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
