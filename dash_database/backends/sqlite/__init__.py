"""The SQLite file engine, shared by threads and processes."""

from .file import FileBackend

__all__ = ["FileBackend"]
