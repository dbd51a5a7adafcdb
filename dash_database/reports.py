"""What the operators' calls report: a copy, signing, converting, checking and repairing a store.

The sync and async faces return the same classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from .keys import Key


@dataclass(frozen=True)
class CopyReport:
    """What a copy did.

    :param users: users copied (their values and activity).
    :param copied: values written that the destination did not have.
    :param unchanged: values the destination already held, equal.
    :param replaced: values that differed, replaced (``overwrite=True``).
    :param kept: values that differed, left alone (``overwrite=False``).
    """

    users: int
    copied: int
    unchanged: int
    replaced: int
    kept: int


@dataclass(frozen=True)
class SignReport:
    """What :meth:`~.DashDatabase.sign_values` did.

    :param signed: values signed (or signed again) with the current key.
    :param refused: values left alone (each is also logged).
    :param refusals: ``(user_id, key_name, why)`` of each value left alone.
    """

    signed: int
    refused: int
    refusals: tuple[tuple[Key, Key, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class ConvertReport:
    """What :meth:`~.DashDatabase.convert_to_data` did (or, with ``dry_run``, would do).

    :param converted: pickled values rewritten in a code-free format.
    :param unchanged: values already in one.
    :param refused: values left as they are (each is also logged).
    :param refusals: ``(user_id, key_name, why)`` of each value left as it is.
    """

    converted: int
    unchanged: int
    refused: int
    refusals: tuple[tuple[Key, Key, str], ...] = field(default=(), repr=False)


class Problem(NamedTuple):
    """One thing wrong with a store.

    :param kind: ``"storage"`` (the engine's own check), ``"missing"`` (a value's data is
        gone, cut short or swapped), ``"damaged"`` (it cannot be read back) or
        ``"counters"`` (a user's counted values or bytes differ from what it holds).
    :param user_id: whose; ``None`` for the storage.
    :param key_name: which value; ``None`` for the storage and counters.
    :param detail: what was found.
    """

    kind: str
    user_id: Key | None
    key_name: Key | None
    detail: str


class CheckReport(NamedTuple):
    """What :meth:`~.Inspector.check` found: how many values it read, and each problem."""

    values: int
    problems: list[Problem]

    @property
    def healthy(self) -> bool:
        """Whether nothing is wrong."""
        return not self.problems


class RepairReport(NamedTuple):
    """What :meth:`~.DashDatabase.repair` did (or, in a dry run, would do).

    :param dropped: the values dropped: missing or damaged, as :meth:`~.Inspector.check` found them.
    :param recounted: whether the counters were rebuilt from the values.
    :param storage: what the engine's own check found; no repair of a value mends it.
    :param activity: users holding values with no activity recorded (written before activity
        was kept, or whose activity index was lost), now recorded as active: without it
        they would never expire.
    """

    dropped: list[Problem]
    recounted: bool
    storage: list[Problem]
    activity: int = 0
