"""Every error dash_database raises on purpose.

Each class derives from :class:`DashDatabaseError` *and* from the builtin
exception it means, so ``except ValueError`` or ``except KeyError`` written
against dash_database 1.0 keeps working.
"""

from __future__ import annotations


class DashDatabaseError(Exception):
    """Base class of every error raised by dash_database."""


class DatabaseClosedError(DashDatabaseError, ValueError):
    """The database was used after :meth:`DashDatabase.close`."""


class InvalidLocationError(DashDatabaseError, ValueError):
    """``db_location`` cannot hold a database (missing folder, not a SQLite file...)."""


class InvalidSessionIdError(DashDatabaseError, ValueError):
    """A session id sent by a browser is malformed or too long; it was not used."""


class KeyNotFoundError(DashDatabaseError, KeyError):
    """The user has no value under that key."""

    def __str__(self) -> str:
        # KeyError.__str__ shows repr(args[0]); a sentence reads better.
        return str(self.args[0]) if self.args else ""


class SerializationError(DashDatabaseError, TypeError):
    """The value cannot be stored with this database's serializer; nothing was written."""


class DeserializationError(DashDatabaseError, ValueError):
    """A stored value cannot be read back (other serializer, or damaged data)."""


class QuotaExceededError(DashDatabaseError, ValueError):
    """A write would pass a quota set on the database; it was refused and nothing changed.

    Nothing is ever evicted to make room: delete values, or raise the limit.
    """


class StorageError(DashDatabaseError, OSError):
    """The storage engine refused the operation (locked, read-only, full, unreachable).

    The operation did not take effect, and every other stored value is intact.
    """


class DamagedStoreError(StorageError):
    """The store's file is damaged (SQLite: "malformed"): it cannot be read whole. The
    message says how to save what can still be read."""


class ConnectionFailedError(StorageError, ConnectionError):
    """The server cannot be reached or refused the credentials; the message names it."""


class OutcomeUnknownError(ConnectionFailedError):
    """The connection failed after the request reached the server: the call may have been
    applied. Read the value back before retrying it (an increment retried blindly could
    count twice)."""


class UserExistsError(DashDatabaseError, ValueError):
    """``rename_user`` would move values onto a user that has some; nothing changed."""


class ReentrantCallError(DashDatabaseError, RuntimeError):
    """The database was called from inside ``update_user_value`` (its func, or while its
    value was pickled or unpickled); it would wait for itself. Call it before or after."""


class DependencyMissingError(DashDatabaseError, ImportError):
    """An optional dependency is not installed; the message names the pip command."""
