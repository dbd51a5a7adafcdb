"""The command line's arguments: ``dash-database LOCATION COMMAND ...``.

argparse, not click or typer: seven flat subcommands and a few options fit
it well, and the library stays free of dependencies beyond sqlitedict.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import NoReturn

from .backends.locations import SCHEMES

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SORTS = ("activity", "bytes", "keys", "user")
_FORMAT = argparse.RawDescriptionHelpFormatter


class UsageError(Exception):
    """Bad arguments: one line to report, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises :class:`UsageError` instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} -h)")


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"12h"``, ``"30d"`` or ``"2w"`` in seconds; a unit is required."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if match and not match[2]:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no unit: write {text}s, {text}m, {text}h, {text}d or {text}w"
        )
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: a number and a unit (s, m, h, d or w), like 30d"
        )
    return float(match[1]) * _UNITS[match[2]]


def _location(text: str) -> str:
    if not text.startswith(SCHEMES) and not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no database file at {text!r}")
    return text


def _command(
    commands: argparse._SubParsersAction[_Parser], name: str, summary: str, example: str
) -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return commands.add_parser(
        name,
        parents=[common],
        help=summary,
        description=summary,
        epilog=f"example:\n  dash-database sessions.sqlite3 {example}\n",
        formatter_class=_FORMAT,
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: a location, then one subcommand."""
    parser = _Parser(
        prog="dash-database",
        description="Inspect and maintain a dash_database store (SQLite, Redis, PostgreSQL).",
        epilog="examples:\n"
        "  dash-database sessions.sqlite3 users --sort bytes --reverse\n"
        "  dash-database sessions.sqlite3 purge --older-than 30d --dry-run\n"
        "  dash-database sessions.sqlite3 copy redis://localhost:6379/0\n\n"
        "exit codes: 0 done, 1 not found, 2 bad arguments, 3 the store failed, 4 damaged.\n"
        "A signed store's key comes from DASH_DATABASE_SECRET_KEY (a key per line, the\n"
        "first signs). USER and KEY are text; digits also match an int id. --json makes\n"
        "every outcome JSON on stdout, errors included.",
        formatter_class=_FORMAT,
    )
    parser.add_argument(
        "location", type=_location, help="SQLite file path, redis:// or postgresql:// URL"
    )
    parser.add_argument(
        "--prefix", help="Redis only: the app's key prefix (default dash_database:)"
    )
    parser.add_argument(
        "--schema", help="PostgreSQL only: the app's schema (default dash_database)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    stats = _command(commands, "stats", "users, values and bytes stored", "stats --check")
    stats.add_argument(
        "--check", action="store_true", help="read every value's size, and count missing data"
    )
    _command(
        commands,
        "check",
        "check every value and the counters, running nothing",
        "check --json",
    )
    repair = _command(
        commands, "repair", "drop missing or damaged values, and recount", "repair --dry-run"
    )
    repair.add_argument(
        "--dry-run", action="store_true", help="say what it would do; change nothing"
    )
    users = _command(commands, "users", "users with sizes and activity", "users --sort bytes")
    users.add_argument("--sort", choices=SORTS, default="activity", help="(default: activity)")
    users.add_argument("--reverse", action="store_true", help="largest or latest first")
    keys = _command(commands, "keys", "one user's keys and sizes", "keys USER")
    keys.add_argument("user")
    show = _command(
        commands,
        "show",
        "one value: plain data in full, anything else named by type unless unpickled",
        "show USER KEY",
    )
    show.add_argument("user")
    show.add_argument("key")
    _unsafe(show)
    purge = _command(
        commands,
        "purge",
        "delete users idle past DURATION, and dead writes' files",
        "purge --older-than 30d --dry-run",
    )
    purge.add_argument(
        "--older-than",
        type=parse_duration,
        required=True,
        metavar="DURATION",
        help="a number and a unit: 90s, 15m, 12h, 30d, 2w",
    )
    purge.add_argument("--dry-run", action="store_true", help="list who would go; delete nothing")
    delete = _command(commands, "delete-user", "delete one user's values", "delete-user USER")
    delete.add_argument("user")
    export = _command(
        commands,
        "export",
        "users' values as one JSON document, with the data (for data-subject requests)",
        "export USER > user.json",
    )
    export.add_argument("users", nargs="*", metavar="USER")
    export.add_argument("--all", action="store_true", help="every user")
    _unsafe(export)
    sign = _command(
        commands,
        "sign",
        "re-sign what other keys in the list signed; list the refused",
        "sign",
    )
    sign.add_argument(
        "--trust-unsigned-values",
        action="store_true",
        help="also sign every unsigned value as it is: only for a store that never had a "
        "key, and whose every value you trust now (anyone who could write it chose them)",
    )
    convert = _command(
        commands,
        "convert-to-data",
        "rewrite pickled values as serializer=data; list the refused",
        "convert-to-data --trust-pickles --dry-run",
    )
    convert.add_argument(
        "--trust-pickles",
        action="store_true",
        help="required: converting unpickles every value, which runs whatever code each "
        "pickle names (with DASH_DATABASE_SECRET_KEY, only signed values are unpickled)",
    )
    convert.add_argument("--dry-run", action="store_true", help="check every value; write nothing")
    copy = _command(
        commands,
        "copy",
        "copy values (never unpickled) and activity to a store",
        "copy redis://localhost:6379/0 --to-prefix myapp:",
    )
    copy.add_argument(
        "destination", help="SQLite file path (made if new), redis:// or postgresql:// URL"
    )
    copy.add_argument("--to-prefix", help="Redis only: the destination's key prefix")
    copy.add_argument("--to-schema", help="PostgreSQL only: the destination's schema")
    copy.add_argument("--users", nargs="+", metavar="USER", help="only these users")
    copy.add_argument("--overwrite", action="store_true", help="replace values that differ")
    return parser


def _unsafe(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--unsafe-unpickle",
        action="store_true",
        help="also unpickle values that are not plain data (runs code: trusted stores only)",
    )
