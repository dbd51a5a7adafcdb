"""The operator's command line: ``python -m dash_database`` (installed as ``dash-database``).

It reads only through the public API and ``db.inspect``, so looking at a
store never changes a user's activity. Values are decoded without running
code (plain data only) unless ``--unsafe-unpickle`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pickletools
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from .cli_parser import UsageError, build_parser, parse_duration
from .database import DashDatabase
from .exceptions import DamagedStoreError, DashDatabaseError, DeserializationError
from .export import to_json, type_name
from .keys import Key
from .serialization import kind_name, serialized_start
from .shared import counting

__all__ = ["ProgressBar", "main", "parse_duration"]

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_FAILED, EXIT_DAMAGED = 0, 1, 2, 3, 4
#: The environment variable the CLI reads the secret key from (one key per line).
SECRET_KEY_VARIABLE = "DASH_DATABASE_SECRET_KEY"
PREVIEW_BYTES = 64 * 1024
PREVIEW_CHARS = 200
_PICKLE_TYPES = {
    "EMPTY_DICT": "dict",
    "EMPTY_LIST": "list",
    "EMPTY_TUPLE": "tuple",
    "TUPLE1": "tuple",
    "TUPLE2": "tuple",
    "TUPLE3": "tuple",
    "EMPTY_SET": "set",
    "NONE": "NoneType",
    "NEWTRUE": "bool",
    "NEWFALSE": "bool",
    "BININT": "int",
    "BININT1": "int",
    "BININT2": "int",
    "LONG1": "int",
    "BINFLOAT": "float",
    "SHORT_BINUNICODE": "str",
    "BINUNICODE": "str",
    "BINUNICODE8": "str",
    "SHORT_BINBYTES": "bytes",
    "BINBYTES": "bytes",
    "BINBYTES8": "bytes",
    "BYTEARRAY8": "bytearray",
}
_UNSAFE = (
    "not unpickled: it is not plain data, and unpickling it runs code chosen by whoever wrote "
    "it; pass --unsafe-unpickle only if you trust everything that can write to this store"
)


class CommandError(Exception):
    """A failure to report on one line, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class ProgressBar:
    """A progress bar on stderr when it is a terminal; silent in pipes and files.

    :param label: what is counted.
    :param total: how many there are.
    """

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.label, self.total = label, total
        self.shown = self.stream.isatty() and total > 0

    def __call__(self, done: int) -> None:
        if self.shown:
            filled = 30 * done // max(self.total, 1)
            bar = "#" * filled + "." * (30 - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done}/{self.total}")
            if done >= self.total:
                self.stream.write("\n")
            self.stream.flush()


def _pick(text: str, existing: Sequence[Key]) -> Key:
    # The shell gives text; "123" may mean the int id 123 when no text id matches.
    if text not in existing and re.fullmatch(r"-?\d+", text) and int(text) in existing:
        return int(text)
    return text


def _when(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="seconds")


def _pickled_type(data: bytes) -> str:
    """The top-level type named by a pickle's first opcodes, found without running it."""
    strings: list[str] = []
    try:
        for opcode, argument, _ in pickletools.genops(data):
            if opcode.name in ("PROTO", "FRAME", "MEMOIZE"):
                continue
            if isinstance(argument, str) and "UNICODE" in opcode.name:
                strings.append(argument)
                continue
            if opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                return f"{strings[-2]}.{strings[-1]}"
            if opcode.name == "GLOBAL" and isinstance(argument, str):
                return argument.replace(" ", ".")
            if opcode.name == "STOP" and strings:
                return "str"
            return _PICKLE_TYPES.get(opcode.name, "unknown")
    except ValueError:
        pass  # the preview ends mid-opcode
    return "str" if strings else "unknown"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."


def _size(size: int | None) -> str:
    return "missing" if size is None else f"{size:,}"


class Cli:
    """One run of the command line; output goes to ``out``.

    :param args: the parsed arguments.
    :param out: where results are written.
    """

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args, self.out = args, out
        # From the environment only: arguments show in `ps` and in shell history.
        keys = [key for key in os.environ.get(SECRET_KEY_VARIABLE, "").splitlines() if key]
        self.secret_key = keys or None
        self.db = DashDatabase(
            args.location, prefix=args.prefix, schema=args.schema, secret_key=self.secret_key
        )

    def close(self) -> None:
        """Close the database this run opened."""
        self.db.close()

    def emit(self, data: Any, lines: list[str]) -> None:
        """Write ``data`` as JSON with --json, else the text ``lines``."""
        if self.args.json:
            self.out.write(json.dumps(data, indent=2, default=str) + "\n")
        else:
            self.out.write("".join(line + "\n" for line in lines))

    def _user(self, text: str) -> Key:
        users = self.db.list_users()
        user_id = _pick(text, users)
        if user_id not in users:
            raise CommandError(f"no user {text!r} in this store", EXIT_NOT_FOUND)
        return user_id

    def stats(self) -> None:
        """Users, values and bytes in the store."""
        progress = ProgressBar("checking", self.db.stats().keys) if self.args.check else None
        stats = self.db.inspect.stats(check=self.args.check, progress=progress)
        data = {"users": stats.users, "keys": stats.keys, "bytes": stats.bytes}
        if stats.missing is not None:
            data["missing"] = stats.missing
        lines = [f"{name}: {value:,}" for name, value in data.items()]
        shared = counting.counts(self.db._open())
        if shared is not None:  # Dash's shared storage, apart from the users' values
            data["shared_values"], data["shared_topics"] = shared
            lines.append(f"Dash shared storage: {shared[0]:,} values, {shared[1]:,} topics")
        self.emit(data, lines)

    def _table(self, user_ids: set[Key] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """The users table (every user, or those named), as JSON rows and text lines."""
        rows = [
            (u.user_id, u.keys, u.bytes, u.last_activity)
            for u in self.db.inspect.users()
            if user_ids is None or u.user_id in user_ids
        ]
        order: dict[str, Callable[[Any], Any]] = {
            "activity": lambda row: row[3] or 0.0,
            "bytes": lambda row: row[2],
            "keys": lambda row: row[1],
            "user": lambda row: (isinstance(row[0], str), row[0]),
        }
        sort = getattr(self.args, "sort", "activity")
        rows.sort(key=order[sort], reverse=getattr(self.args, "reverse", False))
        data = [
            {"user": u, "keys": k, "bytes": b, "last_activity": _when(t)} for u, k, b, t in rows
        ]
        lines = [f"{'USER':<44} {'KEYS':>6} {'BYTES':>14}  LAST ACTIVITY (UTC)"]
        lines += [f"{u!s:<44} {k:>6,} {b:>14,}  {_when(t) or '-'}" for u, k, b, t in rows]
        return data, lines

    def users(self) -> None:
        """Every user with its keys, bytes and last activity."""
        self.emit(*self._table())

    def keys(self) -> None:
        """One user's keys with their sizes."""
        sizes = self.db.inspect.key_sizes(self._user(self.args.user))
        self.emit(
            [{"key": key, "bytes": size} for key, size in sizes.items()],
            [f"{key!s:<44} {_size(size):>14}" for key, size in sizes.items()],
        )

    def _value(self, user_id: Key, key: Key, size: int | None) -> tuple[dict[str, Any], Any]:
        """A description of one value, and the value (``None`` when it was not loaded)."""
        head = self.db.inspect.head(user_id, key, PREVIEW_BYTES)
        if head is None:
            raise CommandError(f"user {user_id!r} has no key {key!r}", EXIT_NOT_FOUND)
        serializer = kind_name(head)
        info: dict[str, Any] = {"key": key, "bytes": size, "serializer": serializer}
        unpickle = self.args.unsafe_unpickle
        try:
            value = self.db.inspect.value(user_id, key, unpickle=unpickle)
        except DeserializationError as exc:
            if serializer == "json" or unpickle or "is not plain data" not in str(exc):
                raise
            # A pickle's opcodes name its type: read it from its first bytes.
            return {**info, "type": _pickled_type(serialized_start(head)), "note": _UNSAFE}, None
        return {**info, "type": type_name(value)}, value

    def show(self) -> None:
        """One value: plain data in full, anything else named by type unless unpickled."""
        user_id = self._user(self.args.user)
        sizes = self.db.inspect.key_sizes(user_id)
        key = _pick(self.args.key, list(sizes))
        info, value = self._value(user_id, key, sizes.get(key))
        lines = [f"key: {info['key']}", f"type: {info['type']}", f"bytes: {_size(info['bytes'])}"]
        lines.append(f"serializer: {info['serializer']}")
        if "note" in info:
            lines.append(info["note"])
        else:
            info["preview"] = _short(value)
            lines.append(f"preview: {info['preview']}")
        self.emit(info, lines)

    def purge(self) -> None:
        """Delete every user idle for longer than --older-than (or list them, --dry-run)."""
        idle = self.db.inspect.idle_users(self.args.older_than)
        if self.args.dry_run:
            data, lines = self._table(set(idle))
            summary = f"would purge {len(idle):,} users (dry run: nothing was deleted)"
            self.emit({"would_purge": len(idle), "users": data}, [summary, *lines])
            return
        removed = self.db.purge_expired(
            older_than=self.args.older_than, progress=ProgressBar("purging", len(idle))
        )
        self.emit({"purged_users": removed}, [f"purged {removed:,} users"])

    def check(self) -> int:
        """Check the store, changing nothing; exit 4 if anything is wrong."""
        values = self.db.stats().keys
        report = self.db.inspect.check(progress=ProgressBar("checking", values))
        problems = [
            {"kind": p.kind, "user": p.user_id, "key": p.key_name, "detail": p.detail}
            for p in report.problems
        ]
        lines = [
            f"{p.kind}: "
            + (f"user {p.user_id!r} " if p.user_id is not None else "")
            + (f"key {p.key_name!r} " if p.key_name is not None else "")
            + p.detail
            for p in report.problems
        ]
        verdict = "healthy" if report.healthy else f"{len(problems):,} problems"
        summary = f"checked {report.values:,} values: {verdict}"
        data = {"values": report.values, "healthy": report.healthy, "problems": problems}
        self.emit(data, [summary, *lines])
        return EXIT_OK if report.healthy else EXIT_DAMAGED

    def repair(self) -> None:
        """Drop values whose data is missing or damaged, and recount (or, --dry-run, say so)."""
        values = self.db.stats().keys
        report = self.db.repair(dry_run=self.args.dry_run, progress=ProgressBar("checking", values))
        verb = "would drop" if self.args.dry_run else "dropped"
        lines = [f"{verb} {len(report.dropped):,} values"]
        lines += [f"  user {p.user_id!r} key {p.key_name!r}: {p.detail}" for p in report.dropped]
        if report.recounted:
            lines.append("would recount the counters" if self.args.dry_run else "recounted")
        if report.activity:
            record = "would record" if self.args.dry_run else "recorded"
            lines.append(f"{record} activity for {report.activity:,} users who had none")
        lines += [f"storage: {p.detail} (restore the file from a backup)" for p in report.storage]
        dropped = [
            {"user": p.user_id, "key": p.key_name, "kind": p.kind, "detail": p.detail}
            for p in report.dropped
        ]
        storage = [p.detail for p in report.storage]
        data = {
            "dry_run": self.args.dry_run,
            "dropped": dropped,
            "recounted": report.recounted,
            "activity": report.activity,
        }
        self.emit({**data, "storage": storage}, lines)

    def delete_user(self) -> None:
        """Delete one user's values and activity."""
        user_id = self._user(self.args.user)
        count = len(self.db.inspect.key_sizes(user_id))
        self.db.delete_all_user_values(user_id)
        self.emit({"user": user_id, "deleted_keys": count}, [f"deleted {count:,} values"])

    def _exported(self, user_id: Key) -> dict[str, Any]:
        values = []
        for key, size in self.db.inspect.key_sizes(user_id).items():
            info, value = self._value(user_id, key, size)
            if "note" not in info:
                info["value"] = to_json(value)
            values.append(info)
        seen = _when(self.db.inspect.last_activity(user_id))
        return {"user": user_id, "last_activity": seen, "values": values}

    def export(self) -> None:
        """Users' values as one JSON document, written one user at a time."""
        if self.args.all == bool(self.args.users):
            raise UsageError("export takes USER names or --all (not both, not neither)")
        users = self.db.list_users() if self.args.all else [self._user(u) for u in self.args.users]
        progress = ProgressBar("exporting", len(users))
        when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.out.write(f'{{"exported_at": "{when}", "users": [\n')
        for done, user_id in enumerate(users, 1):
            separator = ",\n" if done < len(users) else "\n"
            self.out.write(json.dumps(self._exported(user_id)) + separator)
            progress(done)
        self.out.write("]}\n")

    def copy(self) -> None:
        """Copy the users to DESTINATION, as stored; a rerun finishes an interrupted copy."""
        args = self.args
        existing = self.db.list_users()
        users = None if args.users is None else [_pick(text, existing) for text in args.users]
        progress = ProgressBar("copying", len(existing) if users is None else len(users))
        target = DashDatabase(
            args.destination,
            prefix=args.to_prefix,
            schema=args.to_schema,
            secret_key=self.secret_key,
        )
        with target:
            report = self.db.copy_to(target, users, args.overwrite, progress)
        line = (
            f"copied {report.users:,} users: {report.copied:,} values new, {report.unchanged:,} "
            f"already there, {report.replaced:,} replaced, {report.kept:,} kept"
        )
        if report.kept:
            line += " (they differ at the destination: --overwrite replaces them)"
        self.emit(dataclasses.asdict(report), [line])

    def convert_to_data(self) -> None:
        """Rewrite every pickled value in the code-free serializer, or check that it would."""
        if not self.args.trust_pickles:
            raise UsageError(
                "convert-to-data unpickles every value, which runs whatever code each pickle "
                "names: pass --trust-pickles if you trust every one"
            )
        progress = ProgressBar("converting", self.db.stats().keys)
        dry_run = self.args.dry_run
        report = self.db.convert_to_data(trust_pickles=True, dry_run=dry_run, progress=progress)
        done = "would convert" if dry_run else "converted"
        lines = [f"{done} {report.converted:,} values; {report.unchanged:,} were code-free"]
        if report.refused:
            lines[0] += f"; {report.refused:,} refused, left as they are:"
            lines += [f"  user {u!r} key {k!r}: {why}" for u, k, why in report.refusals]
        if not dry_run:
            lines.append('open the store with serializer="data" from now on')
        result = dataclasses.asdict(report)
        result["refusals"] = [{"user": u, "key": k, "why": why} for u, k, why in report.refusals]
        self.emit(result, lines)

    def sign(self) -> None:
        """Sign every value that the first key of DASH_DATABASE_SECRET_KEY did not sign."""
        if self.secret_key is None:
            raise UsageError(
                f"sign needs the store's secret key in the environment variable "
                f"{SECRET_KEY_VARIABLE} (one key per line, the first signs); it is never "
                "read from the command line"
            )
        progress = ProgressBar("signing", self.db.stats().keys)
        trust = self.args.trust_unsigned_values
        report = self.db.sign_values(progress, trust_unsigned=trust)
        lines = [f"signed {report.signed:,} values"]
        if report.refused:
            lines[0] += f"; {report.refused:,} refused, left as they are:"
            lines += [f"  user {u!r} key {k!r}: {why}" for u, k, why in report.refusals]
        result = dataclasses.asdict(report)
        result["refusals"] = [{"user": u, "key": k, "why": why} for u, k, why in report.refusals]
        self.emit(result, lines)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit code. With --json every outcome is JSON on stdout.

    :param argv: the arguments (default ``sys.argv[1:]``).
    :param out: where results go (default ``sys.stdout``).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    out = out or sys.stdout
    as_json = "--json" in argv
    try:
        args = build_parser().parse_args(argv)
        cli = Cli(args, out)
    except (UsageError, ValueError) as exc:  # a location or option that cannot work
        return _fail(exc, EXIT_USAGE, out, as_json)
    except DamagedStoreError as exc:  # too damaged to open: what check would find
        return _fail(exc, EXIT_DAMAGED, out, as_json)
    except (DashDatabaseError, OSError) as exc:
        return _fail(exc, EXIT_FAILED, out, as_json)
    try:
        code = getattr(cli, args.command.replace("-", "_"))()
    except UsageError as exc:
        return _fail(exc, EXIT_USAGE, out, as_json)
    except CommandError as exc:
        return _fail(exc, exc.code, out, as_json)
    except DamagedStoreError as exc:
        return _fail(exc, EXIT_DAMAGED, out, as_json)
    except (DashDatabaseError, OSError) as exc:
        return _fail(exc, EXIT_FAILED, out, as_json)
    finally:
        cli.close()
    return EXIT_OK if code is None else int(code)


def _fail(exc: Exception, code: int, out: TextIO, as_json: bool) -> int:
    if as_json:
        out.write(json.dumps({"error": str(exc), "exit_code": code}) + "\n")
    else:
        sys.stderr.write(f"dash-database: {exc}\n")
    return code
