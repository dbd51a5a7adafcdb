"""The embedded engines: a SQLite file shared by threads and processes, and a memory store."""

from .file import FileBackend
from .memory import MemoryBackend

__all__ = ["FileBackend", "MemoryBackend"]
