# Written by tools/unasync.py from async_checking.py: edit that file, then run the script.
"""Checking a store and repairing it: its engine's own check, each value's data, and the
counters against the values, without running anything the store holds (a pickle's opcodes
are parsed, never run).

:func:`check` only reads (``python -m dash_database STORE check``, ``db.inspect.check()``);
:func:`repair` drops the values whose data is gone or damaged and recounts
(``... repair``, ``db.repair()``).
"""

from __future__ import annotations

from typing import cast

from . import clock, concurrency, purging
from .activity import Progress
from .backends.base import Backend, Maintenance
from .exceptions import DamagedStoreError, DashDatabaseError
from .keys import Key
from .reports import CheckReport, Problem, RepairReport
from .serialization import Codec, kind_name


def check(backend: Maintenance, codec: Codec, progress: Progress | None = None) -> CheckReport:
    """Check every value of ``backend``, and its counters; change nothing.

    :param codec: the store's codec, whose key (if any) checks signed values.
    """
    problems = [Problem("storage", None, None, text) for text in backend.check_storage()]
    held: dict[Key, tuple[int, int]] = {}
    unknown: set[Key] = set()  # users with data missing: their bytes cannot be known
    try:
        sizes = backend.value_sizes(None)
    except DamagedStoreError as exc:  # the values cannot even be listed
        return CheckReport(0, [*problems, Problem("storage", None, None, str(exc))])
    for done, (user_id, key_name, size) in enumerate(sizes, 1):
        keys, stored = held.get(user_id, (0, 0))
        held[user_id] = (keys + 1, stored + (size or 0))
        if size is None:
            unknown.add(user_id)
            detail = "its data is missing, cut short or swapped"
            problems.append(Problem("missing", user_id, key_name, detail))
        elif (why := damage(backend, codec, user_id, key_name)) is not None:
            problems.append(Problem("damaged", user_id, key_name, why))
        if progress is not None:
            progress(done)
    counted = backend.counts(None)
    for user_id in sorted((set(held) | set(counted)) - unknown, key=repr):
        (keys, stored), real = counted.get(user_id, (0, 0)), held.get(user_id, (0, 0))
        if (keys, stored) != real:
            detail = f"counted {keys} values of {stored} bytes; holds {real[0]} of {real[1]}"
            problems.append(Problem("counters", user_id, None, detail))
    return CheckReport(len(sizes), problems)


def damage(backend: Maintenance, codec: Codec, user_id: Key, key_name: Key) -> str | None:
    """Why the value cannot be read back (its data damaged, or refused), or ``None`` if it
    can; reads it through every check without running anything it holds."""
    try:
        raw = backend.read_raw(user_id, key_name)
        if raw is None:
            return None  # deleted since it was listed
        head, pieces = raw
        reader, where = Codec(kind_name(head), signer=codec.signer), (user_id, key_name)
        concurrency.consume(lambda p: reader.check(head, p, where), pieces)
    except DashDatabaseError as exc:
        return str(exc)
    return None


def repair(
    backend: Backend, codec: Codec, dry_run: bool, progress: Progress | None = None
) -> RepairReport:
    """Rebuild the counters from the values, drop every value whose data is missing or
    damaged, remove what dead writers left, and record activity for users with none; with
    ``dry_run``, only say what it would do."""
    if not dry_run:
        # First, so that the check sees every user: counters lost apart from the values (a
        # Redis server evicting keys) leave users out of the list the check reads.
        backend.recount()
    report = check(backend, codec, progress)
    dropped = [p for p in report.problems if p.kind in ("missing", "damaged")]
    storage = [p for p in report.problems if p.kind == "storage"]
    recount = not dry_run or any(p.kind != "storage" for p in report.problems)
    if not dry_run:
        for problem in dropped:  # each names its user and key (see Problem); the deletes
            # keep the counters exact, as every write does
            backend.delete(cast(Key, problem.user_id), cast(Key, problem.key_name), None)
        backend.collect_garbage()
    activity = purging.record_activity(backend, clock.now(), dry_run)
    return RepairReport(dropped, recount, storage, activity)
