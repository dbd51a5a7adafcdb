"""The operator's command line: ``python -m dash_database`` (installed as ``dash-database``).

argparse, not click or typer: seven flat subcommands and a few options fit it
well, and it keeps the library free of dependencies beyond sqlitedict.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pickletools
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from .backends.locations import REDIS_SCHEMES
from .database import DashDatabase
from .exceptions import DashDatabaseError
from .keys import Key

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
PREVIEW_BYTES = 64 * 1024
PREVIEW_CHARS = 200
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SORTS = ("activity", "bytes", "keys", "user")
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
    "not unpickled: unpickling runs code chosen by whoever wrote the value; "
    "pass --unsafe-unpickle only if you trust everything that can write to this store"
)


class CommandError(Exception):
    """A failure to report on one line, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Progress:
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


def parse_duration(text: str) -> float:
    """``"90"``, ``"90s"``, ``"15m"``, ``"12h"``, ``"30d"`` or ``"2w"`` in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number with s, m, h, d or w, like 30d"
        )
    return float(match[1]) * _UNITS[match[2] or "s"]


def _location(text: str) -> str:
    if not text.startswith(REDIS_SCHEMES) and not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no database file at {text!r}")
    return text


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: a location, then one subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    parser = argparse.ArgumentParser(
        prog="dash-database",
        description="Inspect and maintain a dash_database store.",
        epilog="exit codes: 0 done, 1 user or key not found, 2 bad arguments, "
        "3 the store failed. USER and KEY are text; digits also match an int id.",
    )
    parser.add_argument("location", type=_location, help="SQLite file path or redis:// URL")
    parser.add_argument(
        "--prefix", help="Redis only: the app's key prefix (default dash_database:)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("stats", parents=[common], help="users, values and bytes stored")
    users = commands.add_parser("users", parents=[common], help="users with sizes and activity")
    users.add_argument("--sort", choices=_SORTS, default="activity", help="(default: activity)")
    users.add_argument("--reverse", action="store_true", help="largest or latest first")
    keys = commands.add_parser("keys", parents=[common], help="one user's keys and sizes")
    keys.add_argument("user")
    show = commands.add_parser("show", parents=[common], help="a safe preview of one value")
    show.add_argument("user")
    show.add_argument("key")
    show.add_argument("--unsafe-unpickle", action="store_true", help="unpickle to show it")
    purge = commands.add_parser(
        "purge", parents=[common], help="delete idle users (and side files of dead writes)"
    )
    purge.add_argument("--older-than", type=parse_duration, required=True, metavar="DURATION")
    delete = commands.add_parser("delete-user", parents=[common], help="delete one user")
    delete.add_argument("user")
    export = commands.add_parser("export", parents=[common], help="users' values as JSON")
    export.add_argument("users", nargs="+", metavar="USER")
    export.add_argument("--unsafe-unpickle", action="store_true", help="include pickled values")
    return parser


def _pick(text: str, existing: Sequence[Key]) -> Key:
    # The shell gives text; "123" may mean the int id 123 when no text id matches.
    if text not in existing and re.fullmatch(r"-?\d+", text) and int(text) in existing:
        return int(text)
    return text


def _user(db: DashDatabase, text: str) -> Key:
    users = db.list_users()
    user_id = _pick(text, users)
    if user_id not in users:
        raise CommandError(f"no user {text!r} in this store", EXIT_NOT_FOUND)
    return user_id


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


def _size(size: int | None) -> str:
    return "missing" if size is None else f"{size:,}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."


class Cli:
    """One run of the command line; output goes to ``out``.

    :param args: the parsed arguments.
    :param out: where results are written.
    """

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args, self.out = args, out
        self.db = DashDatabase(args.location, prefix=args.prefix)

    def emit(self, data: Any, lines: list[str]) -> None:
        """Write ``data`` as JSON with --json, else the text ``lines``."""
        if self.args.json:
            self.out.write(json.dumps(data, indent=2, default=str) + "\n")
        else:
            self.out.write("".join(line + "\n" for line in lines))

    def stats(self) -> None:
        """Users, values and bytes in the store."""
        stats = self.db.stats()
        data = {"users": stats.users, "keys": stats.keys, "bytes": stats.bytes}
        self.emit(data, [f"{name}: {value:,}" for name, value in data.items()])

    def users(self) -> None:
        """Every user with its keys, bytes and last activity."""
        rows = [(u.user_id, u.keys, u.bytes, u.last_activity) for u in self.db.inspect.users()]
        column = _SORTS.index(self.args.sort)
        order: dict[int, Callable[[Any], Any]] = {
            0: lambda row: row[3] or 0.0,
            1: lambda row: row[2],
            2: lambda row: row[1],
            3: lambda row: (isinstance(row[0], str), row[0]),
        }
        rows.sort(key=order[column], reverse=self.args.reverse)
        data = [
            {"user": u, "keys": k, "bytes": b, "last_activity": _when(t)} for u, k, b, t in rows
        ]
        lines = [f"{'USER':<44} {'KEYS':>6} {'BYTES':>14}  LAST ACTIVITY (UTC)"]
        lines += [f"{u!s:<44} {k:>6,} {b:>14,}  {_when(t) or '-'}" for u, k, b, t in rows]
        self.emit(data, lines)

    def keys(self) -> None:
        """One user's keys with their sizes."""
        user_id = _user(self.db, self.args.user)
        sizes = self.db.inspect.key_sizes(user_id)
        self.emit(
            [{"key": key, "bytes": size} for key, size in sizes.items()],
            [f"{key!s:<44} {_size(size):>14}" for key, size in sizes.items()],
        )

    def _value(self, user_id: Key, key: Key) -> dict[str, Any]:
        """A description of one value; its content only when safe or allowed."""
        head = self.db.inspect.head(user_id, key, PREVIEW_BYTES)
        if head is None:
            raise CommandError(f"user {user_id!r} has no key {key!r}", EXIT_NOT_FOUND)
        size = self.db.inspect.key_sizes(user_id).get(key)
        serializer = "json" if head[:1] in (b"J", b"j") else "pickle"
        info: dict[str, Any] = {"key": key, "bytes": size, "serializer": serializer}
        if serializer == "pickle" and not self.args.unsafe_unpickle:
            return {**info, "type": _pickled_type(head[1:]), "note": _UNSAFE}
        location, prefix = self.args.location, self.args.prefix
        with DashDatabase(location, serializer=serializer, prefix=prefix) as reader:
            value = reader.inspect.value(user_id, key)
        return {**info, "type": type(value).__name__, "value": value}

    def show(self) -> None:
        """A safe preview of one value: type, size, and a short repr when allowed."""
        user_id = _user(self.db, self.args.user)
        key = _pick(self.args.key, list(self.db.inspect.key_sizes(user_id)))
        info = self._value(user_id, key)
        lines = [f"{name}: {info[name]}" for name in ("key", "type", "serializer")]
        lines.insert(2, f"bytes: {_size(info['bytes'])}")
        if "value" in info:
            lines.append(f"preview: {_short(info['value'])}")
            info["value"] = _short(info["value"])
        else:
            lines.append(info["note"])
        self.emit(info, lines)

    def purge(self) -> None:
        """Delete every user idle for longer than --older-than."""
        total = len(self.db.inspect.idle_users(self.args.older_than))
        removed = self.db.purge_expired(
            older_than=self.args.older_than, progress=Progress("purging", total)
        )
        self.emit({"purged_users": removed}, [f"purged {removed:,} users"])

    def delete_user(self) -> None:
        """Delete one user's values and activity."""
        user_id = _user(self.db, self.args.user)
        count = len(self.db.inspect.key_sizes(user_id))
        self.db.delete_all_user_values(user_id)
        self.emit({"user": user_id, "deleted_keys": count}, [f"deleted {count:,} values"])

    def export(self) -> None:
        """Users' values as JSON, for data-subject requests (always JSON)."""
        users = [_user(self.db, text) for text in self.args.users]
        progress = Progress("exporting", len(users))
        exported = []
        for done, user_id in enumerate(users, 1):
            values = [self._value(user_id, key) for key in self.db.inspect.key_sizes(user_id)]
            seen = self.db.inspect.last_activity(user_id)
            exported.append({"user": user_id, "last_activity": _when(seen), "values": values})
            progress(done)
        self.out.write(json.dumps(exported, indent=2, default=repr) + "\n")


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit code.

    :param argv: the arguments (default ``sys.argv[1:]``).
    :param out: where results go (default ``sys.stdout``).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cli = Cli(args, out or sys.stdout)
    except ValueError as exc:
        # A location or option that cannot work: the usage line helps.
        parser.error(str(exc))
    except (DashDatabaseError, OSError) as exc:
        return _fail(exc, EXIT_FAILED)
    try:
        getattr(cli, args.command.replace("-", "_"))()
    except CommandError as exc:
        return _fail(exc, exc.code)
    except (DashDatabaseError, OSError) as exc:
        return _fail(exc, EXIT_FAILED)
    finally:
        cli.db.close()
    return EXIT_OK


def _fail(exc: Exception, code: int) -> int:
    sys.stderr.write(f"dash-database: {exc}\n")
    return code
