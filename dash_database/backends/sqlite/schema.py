"""The SQL of a dash_database file: tables, triggers, statements, and record keys.

sqlitedict creates and owns the values table (``key TEXT PRIMARY KEY, value
BLOB``), so the file stays a plain sqlitedict database. A record key is the
JSON text of ``[user_id, key_name]``: JSON keeps ``1`` apart from ``"1"`` and
ends every id unambiguously, so one user's records are exactly one range of
the primary key index, and listing or deleting a user is an index range,
never a scan.
"""

from __future__ import annotations

from typing import Any

from ...keys import Key, encode_key
from ...records import HEADER_TAGS, sql_is_chunked, sql_reference

DURABILITY = {"normal": "NORMAL", "full": "FULL"}

VALUES = "dash_database"
SESSIONS = "dash_database_sessions"
TRASH = "dash_database_trash"
# Files made by 2.0 have triggers that name this table (2.0 kept a memory
# database's chunks in it), so it stays, empty, in every file.
_CHUNKS = "dash_database_chunks"

USERS = "dash_database_users"
TOTALS = "dash_database_totals"
PUT_SEEN_VIEW = "dash_database_put_seen"
#: ``PRAGMA user_version`` of a file made by this version; 4: its triggers read
#: side-file names only after a tag, not a record header (see
#: :mod:`dash_database.records`); 3: before the :data:`PUT_SEEN_VIEW` view; 2: its
#: counters always kept the store's totals; 0: made before counters.
VERSION = 5
#: The first version whose records name their user and size, and whose counters are kept.
COUNTED = 2

SCHEMA = (
    # A user's last activity (a time.time()), written with its first value. One
    # b-tree: files made before version 3 have a rowid table, read the same way.
    f'CREATE TABLE IF NOT EXISTS "{SESSIONS}" '
    "(user TEXT PRIMARY KEY, seen REAL NOT NULL) WITHOUT ROWID",
    f'CREATE INDEX IF NOT EXISTS "{SESSIONS}_seen" ON "{SESSIONS}" (seen)',
    f'CREATE TABLE IF NOT EXISTS "{_CHUNKS}" '
    "(key TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (key, seq))",
    # Side-file names whose record is gone; each file is removed after the commit.
    f'CREATE TABLE IF NOT EXISTS "{TRASH}" (name TEXT PRIMARY KEY)',
    # The counters: each user's values and stored bytes, and the store's. Every
    # write changing the store's row would add a page to every commit (7 us of a
    # 45 us write), and only max_total_bytes reads it: its values are NULL, and
    # kept by nobody, until a write under that quota fills them in (see
    # counters.check); from then on every writer keeps them. Files of version 2
    # keep them always: a 2.2.0 process would read them.
    f'CREATE TABLE IF NOT EXISTS "{USERS}" '
    "(user TEXT PRIMARY KEY, keys INTEGER NOT NULL, bytes INTEGER NOT NULL) WITHOUT ROWID",
    f'CREATE TABLE IF NOT EXISTS "{TOTALS}" (id INTEGER PRIMARY KEY CHECK (id = 0), '
    "keys INTEGER, bytes INTEGER)",
    f'INSERT OR IGNORE INTO "{TOTALS}" VALUES (0, NULL, NULL)',
    # A write that records its user's activity too is one statement, through
    # this view's trigger (see TRIGGERS): a transaction around two statements
    # holds the file's write lock while Python runs between them, which cost 4
    # processes writing new users a fifth of their rate (13,700 against 17,000
    # writes/s). Processes of version 3 never write through it.
    f'CREATE VIEW IF NOT EXISTS "{PUT_SEEN_VIEW}" (key, value, user, size, seen) '
    "AS SELECT NULL, NULL, NULL, NULL, NULL WHERE 0",
)
# Beside sqlitedict's two columns, each record names its user (the JSON text
# of the id, as in the sessions table) and its stored bytes, so that triggers
# can keep the counters without parsing keys or reading side files. Columns
# added to sqlitedict's table leave it readable by sqlitedict.
COLUMNS = (("user", "TEXT"), ("size", "INTEGER"))
# Triggers of older files, dropped when a file is upgraded: 2.0 and 2.1 kept only
# the trash with the first two; the first 2.2 development files counted with REPLACE.
OLD_TRIGGERS = tuple(f"{VALUES}_{name}" for name in ("replace", "delete", "replaced"))
_UPSERT = "ON CONFLICT (key) DO UPDATE SET value = excluded.value, size = excluded.size"
_MARK = "ON CONFLICT (user) DO UPDATE SET seen = max(seen, excluded.seen)"
# An UPDATE that matches no row writes no page.
_KEPT = "WHERE bytes IS NOT NULL"
_OLD_FILE = f'INSERT OR IGNORE INTO "{TRASH}" VALUES ({sql_reference("OLD.value")})'
TRIGGERS = (
    # A writer that does not fill the new columns (an older version, or
    # sqlitedict itself) would make the counters wrong: it is refused, loudly.
    f'CREATE TRIGGER IF NOT EXISTS "{VALUES}_guard" BEFORE INSERT ON "{VALUES}" '
    "WHEN NEW.user IS NULL OR NEW.size IS NULL "
    "BEGIN SELECT RAISE(ABORT, 'this file keeps counters (dash_database 2.2 or later); "
    "write to it with dash_database 2.2 or later'); END",
    # The counters, and a side file's name going to the trash, change inside the
    # statement that writes or deletes a record, so that a single write or a
    # user-wide delete stays one atomic statement with no transaction around it.
    # A write is an upsert (see PUT): a new key fires the insert trigger, a
    # replaced value the update one, with its old size at hand. Renames update
    # only key and user, which fire neither.
    f'CREATE TRIGGER IF NOT EXISTS "{VALUES}_inserted" AFTER INSERT ON "{VALUES}" '
    f'BEGIN INSERT INTO "{USERS}" (user, keys, bytes) VALUES (NEW.user, 1, NEW.size) '
    "ON CONFLICT (user) DO UPDATE SET keys = keys + 1, bytes = bytes + excluded.bytes; "
    f'UPDATE "{TOTALS}" SET keys = keys + 1, bytes = bytes + NEW.size {_KEPT}; END',
    # A value replaced by one of the same size changes no counter: no page to write.
    f'CREATE TRIGGER IF NOT EXISTS "{VALUES}_updated" AFTER UPDATE OF value, size ON "{VALUES}" '
    "WHEN NEW.size IS NOT OLD.size "
    f'BEGIN UPDATE "{USERS}" SET bytes = bytes + NEW.size - OLD.size WHERE user = NEW.user; '
    f'UPDATE "{TOTALS}" SET bytes = bytes + NEW.size - OLD.size {_KEPT}; END',
    # A record whose header alone changes (a rename rebinds a signed value) keeps its file.
    f'CREATE TRIGGER IF NOT EXISTS "{VALUES}_replaced_file" AFTER UPDATE OF value ON "{VALUES}" '
    f"WHEN {sql_is_chunked('OLD.value')} "
    f"AND {sql_reference('OLD.value')} IS NOT {sql_reference('NEW.value')} "
    f"BEGIN {_OLD_FILE}; END",
    f'CREATE TRIGGER IF NOT EXISTS "{VALUES}_deleted" AFTER DELETE ON "{VALUES}" '
    f'BEGIN UPDATE "{USERS}" SET keys = keys - 1, bytes = bytes - OLD.size WHERE user = OLD.user; '
    f'DELETE FROM "{USERS}" WHERE user = OLD.user AND keys <= 0; '
    f'UPDATE "{TOTALS}" SET keys = keys - 1, bytes = bytes - OLD.size {_KEPT}; END',
    f'CREATE TRIGGER IF NOT EXISTS "{VALUES}_deleted_file" AFTER DELETE ON "{VALUES}" '
    f"WHEN {sql_is_chunked('OLD.value')} BEGIN {_OLD_FILE}; END",
    f'CREATE TRIGGER IF NOT EXISTS "{PUT_SEEN_VIEW}_insert" INSTEAD OF INSERT ON "{PUT_SEEN_VIEW}" '
    f'BEGIN INSERT INTO "{SESSIONS}" (user, seen) VALUES (NEW.user, NEW.seen) {_MARK}; '
    f'INSERT INTO "{VALUES}" (key, value, user, size) '
    f"VALUES (NEW.key, NEW.value, NEW.user, NEW.size) {_UPSERT}; END",
)
GET = f'SELECT value, size FROM "{VALUES}" WHERE key = ?'
HAS = f'SELECT 1 FROM "{VALUES}" WHERE key = ?'
PUT = f'INSERT INTO "{VALUES}" (key, value, user, size) VALUES (?, ?, ?, ?) {_UPSERT}'
PUT_SEEN = f'INSERT INTO "{PUT_SEEN_VIEW}" VALUES (?, ?, ?, ?, ?)'
OLD_SIZE = f'SELECT size FROM "{VALUES}" WHERE key = ?'
USER_COUNT = f'SELECT user, keys, bytes FROM "{USERS}" WHERE user = ?'
ALL_COUNTS = f'SELECT user, keys, bytes FROM "{USERS}"'
ALL_USERS = f'SELECT user FROM "{USERS}"'
TOTAL_BYTES = f'SELECT bytes FROM "{TOTALS}"'
KEEP_TOTALS = (
    f'UPDATE "{TOTALS}" SET keys = (SELECT coalesce(sum(keys), 0) FROM "{USERS}"), '
    f'bytes = (SELECT coalesce(sum(bytes), 0) FROM "{USERS}")'
)
RENAME_COUNT = f'UPDATE "{USERS}" SET user = ? WHERE user = ?'
FORGET_COUNT = f'DELETE FROM "{USERS}" WHERE user = ?'
DELETE = f'DELETE FROM "{VALUES}" WHERE key = ?'
_RANGE = "key >= ? AND key < ?"
KEYS = f'SELECT key FROM "{VALUES}" WHERE {_RANGE}'
COUNT = f'SELECT count(*) FROM "{VALUES}" WHERE {_RANGE}'
DELETE_RANGE = f'DELETE FROM "{VALUES}" WHERE {_RANGE}'
SIZES = f'SELECT key, length(value), {sql_reference("value")}, size FROM "{VALUES}"'
USER_SIZES = f"{SIZES} WHERE {_RANGE}"
ALL_FILES = f'SELECT {sql_reference("value")} FROM "{VALUES}" WHERE {sql_is_chunked("value")}'
TRASHED = f'SELECT name FROM "{TRASH}"'
UNTRASH = f'DELETE FROM "{TRASH}" WHERE name = ?'
SEEN = f'SELECT seen FROM "{SESSIONS}" WHERE user = ?'
ALL_SEEN = f'SELECT user, seen FROM "{SESSIONS}"'
MARK = f'INSERT INTO "{SESSIONS}" (user, seen) VALUES (?, ?) {_MARK}'
REFRESH = f'UPDATE "{SESSIONS}" SET seen = max(seen, ?) WHERE user = ?'
IDLE = f'SELECT user FROM "{SESSIONS}" WHERE seen < ? ORDER BY seen LIMIT ?'
_IS_IDLE = f'EXISTS (SELECT 1 FROM "{SESSIONS}" WHERE user = ? AND seen < ?)'
DELETE_IDLE_RANGE = f"{DELETE_RANGE} AND {_IS_IDLE}"
FORGET = f'DELETE FROM "{SESSIONS}" WHERE user = ?'
# A user's records get the new user's prefix; UPDATE fires none of the
# triggers, so the side files they name stay where they are, unread.
RENAME_RANGE = f'UPDATE "{VALUES}" SET key = ? || substr(key, ?), user = ? WHERE {_RANGE}'
# A rename rebinds each signed record to its new user: it reads the records' heads
# (at most a tag and 255 bytes of header) and rewrites them, never their bodies.
_HEADERS = ", ".join(f"x'{tag.hex()}'" for tag in HEADER_TAGS)
HEADS = (
    f'SELECT key, substr(value, 1, 256) FROM "{VALUES}" '
    f"WHERE {_RANGE} AND substr(value, 1, 1) IN ({_HEADERS})"
)
REHEAD = f'UPDATE "{VALUES}" SET value = CAST(? || substr(value, ?) AS BLOB) WHERE key = ?'
RENAME_SEEN = f'UPDATE "{SESSIONS}" SET user = ? WHERE user = ?'
FORGET_IDLE = f'DELETE FROM "{SESSIONS}" WHERE user = ? AND seen < ?'

Row = tuple[Any, ...]
Rows = list[Row]


def check_durability(durability: str) -> str:
    """The ``PRAGMA synchronous`` level for ``durability``.

    :raises ValueError: neither ``"normal"`` nor ``"full"``.
    """
    if durability not in DURABILITY:
        raise ValueError(f"durability must be one of {tuple(DURABILITY)}, not {durability!r}")
    return DURABILITY[durability]


def record_key(user_id: Key, key_name: Key) -> str:
    """The primary key of one value: the JSON text of ``[user_id, key_name]``."""
    return f"[{encode_key(user_id)},{encode_key(key_name)}]"


def user_range(user_id: Key) -> tuple[str, str]:
    """The half-open range of record keys that belong to ``user_id``, and to nobody else."""
    # Every record key of the user starts with this prefix; since "-" follows ","
    # in every collation, prefix[:-1] + "-" is the first text past all of them.
    prefix = "[" + encode_key(user_id) + ","
    return prefix, prefix[:-1] + "-"
