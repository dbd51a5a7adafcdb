"""The SQL of a PostgreSQL store: its tables, triggers and statements, in a schema of its own.

A store lives in one schema (``dash_database`` by default), never ``public``,
so that several apps share a database by schema name. A value's row is found
by two 16-byte digests, of its user's id and of its key name (the JSON text of
each, see :func:`~dash_database.keys.encode_key`): a B-tree entry holds at most
about 2.7 KB, and an id may be a 4,200-digit int. Every statement compares the
ids' texts too, so a collision of digests can never show one user another's value;
the write refuses it instead.

Counters (each user's values and stored bytes, and the store's) are kept by a
trigger in the statement that writes or deletes a value, as on a SQLite file. A
value larger than one chunk keeps its body in :data:`CHUNKS` rows, named by a
version in its row; the trigger deletes a replaced or deleted value's chunks in
the same statement.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import NamedTuple

from ...keys import Key, encode_key
from ...records import HEADER_TAGS

#: The schema a store lives in unless ``schema=`` says otherwise.
DEFAULT_SCHEMA = "dash_database"
#: The version of the tables this module creates; stored in the schema's ``meta`` table.
VERSION = 1
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# A rename rebinds the records that have a header (see Codec.rebind): their first bytes.
_HEADERS = ", ".join(str(tag[0]) for tag in HEADER_TAGS)


def check_schema(schema: str) -> str:
    """The quoted name of ``schema``.

    :raises ValueError: a name that is not lowercase letters, digits and ``_`` (at most
        63, not starting with a digit), or is ``public``.
    """
    if not isinstance(schema, str) or not _NAME.fullmatch(schema):
        raise ValueError(
            f"schema must be lowercase letters, digits and _ (at most 63, not starting with "
            f"a digit), not {schema!r}"
        )
    if schema == "public" or schema.startswith("pg_"):
        raise ValueError(
            f"schema={schema!r} is PostgreSQL's own; a store keeps to a schema of its own, "
            f"such as {DEFAULT_SCHEMA!r}"
        )
    return f'"{schema}"'


def digest(text: str) -> bytes:
    """The 16-byte digest that indexes an encoded id or key name."""
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class Ref(NamedTuple):
    """A user id or key name as its row holds it: its digest and its JSON text."""

    digest: bytes
    text: str


# The same users and key names come back call after call; a digest costs more than a lookup.
@functools.lru_cache(maxsize=4096, typed=True)
def ref(key: Key) -> Ref:
    """The row form of a user id or key name."""
    text = encode_key(key)
    return Ref(digest(text), text)


def tables(s: str) -> tuple[str, ...]:
    """The statements that create a store's tables in the quoted schema ``s``."""
    return (
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"CREATE TABLE IF NOT EXISTS {s}.meta (name text PRIMARY KEY, value text NOT NULL)",
        # chunks: the version of the value's chunks (NULL: the record holds the whole value).
        f"CREATE TABLE IF NOT EXISTS {s}.values (uid bytea NOT NULL, kid bytea NOT NULL, "
        "user_id text NOT NULL, key_name text NOT NULL, record bytea NOT NULL, "
        "size bigint NOT NULL, chunks uuid, PRIMARY KEY (uid, kid))",
        # Chunks are compressed by the codec if at all: PostgreSQL need not try again.
        f"CREATE TABLE IF NOT EXISTS {s}.chunks (version uuid NOT NULL, seq integer NOT NULL, "
        "data bytea NOT NULL, PRIMARY KEY (version, seq))",
        f"ALTER TABLE {s}.chunks ALTER COLUMN data SET STORAGE EXTERNAL",
        f"CREATE TABLE IF NOT EXISTS {s}.users (uid bytea PRIMARY KEY, user_id text NOT NULL, "
        "keys bigint NOT NULL, bytes bigint NOT NULL)",
        # The store's totals are NULL, and kept by nobody, until a write under
        # max_total_bytes fills them in and adds the triggers that keep them
        # (Statements.keep_totals): a row every write changed would make every
        # write wait for the one before it.
        f"CREATE TABLE IF NOT EXISTS {s}.totals (id integer PRIMARY KEY CHECK (id = 0), "
        "keys bigint, bytes bigint)",
        f"INSERT INTO {s}.totals VALUES (0, NULL, NULL) ON CONFLICT DO NOTHING",
        f"CREATE TABLE IF NOT EXISTS {s}.sessions (uid bytea PRIMARY KEY, user_id text NOT NULL, "
        "seen double precision NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS sessions_seen ON {s}.sessions (seen)",
        # Each user's counters change in the statement that writes or deletes a value.
        # A value replaced by one of the same size and place (most rewrites, and every
        # rename) runs no trigger at all.
        f"""CREATE OR REPLACE FUNCTION {s}.counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO {s}.users AS u VALUES (NEW.uid, NEW.user_id, 1, NEW.size)
            ON CONFLICT (uid) DO UPDATE SET keys = u.keys + 1, bytes = u.bytes + excluded.bytes;
        RETURN NULL;
    END IF;
    IF OLD.chunks IS NOT NULL AND (TG_OP = 'DELETE' OR OLD.chunks IS DISTINCT FROM NEW.chunks)
    THEN
        DELETE FROM {s}.chunks WHERE version = OLD.chunks;
    END IF;
    IF TG_OP = 'DELETE' THEN
        -- most deletes take a user's last value: one statement then
        DELETE FROM {s}.users WHERE uid = OLD.uid AND keys <= 1;
        IF NOT FOUND THEN
            UPDATE {s}.users SET keys = keys - 1, bytes = bytes - OLD.size WHERE uid = OLD.uid;
        END IF;
    ELSIF NEW.size <> OLD.size THEN
        UPDATE {s}.users SET bytes = bytes + NEW.size - OLD.size WHERE uid = NEW.uid;
    END IF;
    RETURN NULL;
END $$""",
        f"""CREATE OR REPLACE FUNCTION {s}.totalled() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE {s}.totals SET keys = keys + 1, bytes = bytes + NEW.size;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE {s}.totals SET keys = keys - 1, bytes = bytes - OLD.size;
    ELSE
        UPDATE {s}.totals SET bytes = bytes + NEW.size - OLD.size;
    END IF;
    RETURN NULL;
END $$""",
        *_triggers(s, "counted"),
    )


def _triggers(s: str, function: str) -> tuple[str, ...]:
    """The triggers that run ``function`` on each value written, replaced (if its size or
    chunks change) or deleted."""
    changed = "WHEN (NEW.size <> OLD.size OR OLD.chunks IS DISTINCT FROM NEW.chunks)"
    return (
        f"DROP TRIGGER IF EXISTS {function} ON {s}.values",
        f"DROP TRIGGER IF EXISTS re{function} ON {s}.values",
        f"CREATE TRIGGER {function} AFTER INSERT OR DELETE ON {s}.values "
        f"FOR EACH ROW EXECUTE FUNCTION {s}.{function}()",
        f"CREATE TRIGGER re{function} AFTER UPDATE ON {s}.values FOR EACH ROW {changed} "
        f"EXECUTE FUNCTION {s}.{function}()",
    )


class Read(NamedTuple):
    """A read's two statements, each one row: the user's activity (``NULL`` in ``plain``),
    then the result. ``touched`` takes the user's digest and id before the result's
    arguments."""

    touched: str
    plain: str

    @classmethod
    def of(cls, seen: str, result: str) -> Read:
        """The read of ``result``, with the activity that ``seen`` selects."""
        return cls(f"SELECT {seen}, {result}", f"SELECT NULL, {result}")


class Statements:
    """Every statement of a store in the quoted schema ``s`` (``%s`` placeholders)."""

    def __init__(self, s: str) -> None:
        row = "uid = %s AND user_id = %s AND kid = %s AND key_name = %s"
        user = "uid = %s AND user_id = %s"
        self.version = f"SELECT value FROM {s}.meta WHERE name = 'version'"
        self.set_version = (
            f"INSERT INTO {s}.meta VALUES ('version', %s) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )
        # A read that applies a touch answers with the user's activity too (see the
        # engine's _read): one row, the activity first.
        seen = f"(SELECT seen FROM {s}.sessions WHERE {user})"
        self.get = Read.of(seen, f"(SELECT record FROM {s}.values WHERE {row})")
        self.has = Read.of(seen, f"EXISTS (SELECT FROM {s}.values WHERE {row})")
        self.keys = Read.of(seen, f"array(SELECT key_name FROM {s}.values WHERE {user})")
        self.seen_alone = Read.of(seen, "NULL")
        self.size = f"SELECT size FROM {s}.values WHERE {row}"
        # The digests' collision guard: a conflicting row of other ids is left alone,
        # and the statement reports no row written.
        upsert = (
            f"INSERT INTO {s}.values AS v (uid, user_id, kid, key_name, record, size, chunks) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (uid, kid) DO UPDATE SET "
            "record = excluded.record, size = excluded.size, chunks = excluded.chunks "
            "WHERE v.user_id = excluded.user_id AND v.key_name = excluded.key_name"
        )
        self.put = upsert
        mark = (
            f"INSERT INTO {s}.sessions AS s VALUES (%s, %s, %s) "
            "ON CONFLICT (uid) DO UPDATE SET seen = greatest(s.seen, excluded.seen)"
        )
        self.mark = mark
        # A write and its activity in one statement (see Touch.outcome: a write always
        # stores max(seen, now)).
        self.put_seen = f"WITH seen AS ({mark}) {upsert}"
        self.replace = (
            f"UPDATE {s}.values SET record = %s, size = %s, chunks = %s WHERE {row} AND record = %s"
        )
        self.insert_new = (
            f"INSERT INTO {s}.values (uid, user_id, kid, key_name, record, size, chunks) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (uid, kid) DO NOTHING"
        )
        self.delete = f"DELETE FROM {s}.values WHERE {row}"
        self.delete_user = (
            f"WITH gone AS (DELETE FROM {s}.values WHERE {user} RETURNING 1), "
            f"seen AS (DELETE FROM {s}.sessions WHERE {user}) SELECT count(*) FROM gone"
        )
        # The activity row is deleted, under its lock, only if still idle; its values go
        # only then. A write that refreshed it meanwhile keeps the user.
        self.delete_idle = (
            f"WITH idle AS (DELETE FROM {s}.sessions WHERE {user} AND seen < %s RETURNING 1), "
            f"gone AS (DELETE FROM {s}.values WHERE {user} AND EXISTS (SELECT 1 FROM idle)) "
            "SELECT count(*) FROM idle"
        )
        self.chunk = f"INSERT INTO {s}.chunks VALUES (%s, %s, %s)"
        self.read_chunk = (
            f"SELECT substring(data FROM %s FOR %s), length(data) FROM {s}.chunks "
            "WHERE version = %s AND seq = %s"
        )
        self.chunk_sizes = (
            f"SELECT count(*), coalesce(sum(length(data)), 0) FROM {s}.chunks WHERE version = %s"
        )
        self.seen = f"SELECT seen FROM {s}.sessions WHERE {user}"
        self.lock_seen = f"SELECT seen FROM {s}.sessions WHERE {user} FOR UPDATE"
        self.refresh = f"UPDATE {s}.sessions SET seen = greatest(seen, %s) WHERE {user}"
        self.all_seen = f"SELECT user_id, seen FROM {s}.sessions"
        self.idle = f"SELECT user_id FROM {s}.sessions WHERE seen < %s ORDER BY seen LIMIT %s"
        # Takes the user's counter row (made if missing) for the rest of the transaction:
        # racing writers of one user are checked one after another.
        self.lock_count = (
            f"INSERT INTO {s}.users AS u VALUES (%s, %s, 0, 0) ON CONFLICT (uid) "
            "DO UPDATE SET keys = u.keys RETURNING keys, bytes"
        )
        self.forget_empty = f"DELETE FROM {s}.users WHERE uid = %s AND keys <= 0"
        self.total = f"SELECT bytes FROM {s}.totals WHERE id = 0 FOR UPDATE"
        fill_totals = (
            f"UPDATE {s}.totals SET keys = (SELECT coalesce(sum(keys), 0) FROM {s}.users), "
            f"bytes = (SELECT coalesce(sum(bytes), 0) FROM {s}.users) WHERE id = 0"
        )
        # Inside a transaction that holds the totals row, which writers under
        # max_total_bytes take first: one of them starts keeping the totals.
        self.keep_totals = (fill_totals, *_triggers(s, "totalled"))
        self.count = f"SELECT user_id, keys, bytes FROM {s}.users WHERE {user}"
        self.all_counts = f"SELECT user_id, keys, bytes FROM {s}.users"
        self.sizes = f"SELECT user_id, key_name, record, size, chunks FROM {s}.values"
        self.user_sizes = f"{self.sizes} WHERE {user}"
        self.heads = (
            f"SELECT kid, key_name, substring(record FROM 1 FOR 256) FROM {s}.values "
            f"WHERE {user} AND get_byte(record, 0) IN ({_HEADERS})"
        )
        self.rehead = (
            f"UPDATE {s}.values SET record = %s || substring(record FROM %s) "
            "WHERE uid = %s AND kid = %s"
        )
        self.move_values = f"UPDATE {s}.values SET uid = %s, user_id = %s WHERE {user}"
        self.move_count = f"UPDATE {s}.users SET uid = %s, user_id = %s WHERE {user}"
        self.forget_seen = f"DELETE FROM {s}.sessions WHERE uid = %s"
        self.move_seen = f"UPDATE {s}.sessions SET uid = %s, user_id = %s WHERE {user}"
        self.lock_values = f"LOCK TABLE {s}.values IN SHARE MODE"
        self.recount = (
            f"DELETE FROM {s}.users",
            f"INSERT INTO {s}.users SELECT uid, min(user_id), count(*), sum(size) "
            f"FROM {s}.values GROUP BY uid",
            f"{fill_totals} AND bytes IS NOT NULL",
        )
        self.orphans = (
            f"DELETE FROM {s}.chunks c WHERE NOT EXISTS "
            f"(SELECT 1 FROM {s}.values v WHERE v.chunks = c.version)"
        )
