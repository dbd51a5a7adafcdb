"""The example app under gunicorn: 4 worker processes share one SQLite file.

From the root of a clone::

    pip install ".[dash]" gunicorn
    gunicorn -w 4 -b 127.0.0.1:8050 --chdir examples gunicorn_app:server

A browser's callbacks land on any of the workers, so every worker must open the
same database: the file named by ``DASH_DATABASE_PATH``, by default
``examples/dash_database.sqlite``. (``DashDatabase()`` without a path would give
each worker a private temporary file, and users would lose their values.) For
several hosts, point ``DASH_DATABASE_PATH`` at a Redis URL instead.
"""

import os
from pathlib import Path

# Set before importing the app, which opens the database when imported.
os.environ.setdefault("DASH_DATABASE_PATH", str(Path(__file__).with_name("dash_database.sqlite")))

from app import app, server  # after the path is set

__all__ = ["app", "server"]
