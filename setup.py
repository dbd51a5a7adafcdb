"""Packaging for dash_database; ``pip install .`` (extras: redis, dash, test)."""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(r'__version__ = "(.+)"', (HERE / "dash_database" / "_version.py").read_text())

setup(
    name="dash_database",
    version=VERSION.group(1) if VERSION else "0",
    description="Per-user values for Plotly Dash apps, kept on the server between callbacks.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Unlicense",
    url="https://github.com/ThibTrip/dash_database",
    # Found, not listed: a subpackage left out of the list would install a broken library.
    packages=find_packages(include=["dash_database", "dash_database.*"]),
    package_data={"dash_database": ["py.typed"]},
    python_requires=">=3.10",
    entry_points={"console_scripts": ["dash-database = dash_database.cli:main"]},
    install_requires=["sqlitedict>=2.1,<3"],
    extras_require={
        "redis": ["redis>=5.0.1"],
        # The binary wheel brings libpq; the pool module takes an app's own pool.
        "postgres": ["psycopg[binary]>=3.2", "psycopg-pool>=3.2"],
        # serializer="data" for DataFrames and arrays; before 14.0.1 pyarrow unpickles
        # extension types on read (CVE-2023-47248).
        "data": ["pyarrow>=14.0.1", "numpy>=1.22", "pandas>=2"],
        "zstd": ["zstandard>=0.22"],
        # The example app keeps its DataFrame with serializer="data" (pandas, pyarrow).
        "dash": ["dash>=2.17", "pandas>=2", "pyarrow>=14.0.1"],
        "test": [
            "pytest>=7",
            "pytest-cov>=5",
            "hypothesis>=6",
            "mypy>=1.8",
            "ruff>=0.5",
            "pandas>=2",
            "pyarrow>=14.0.1",
            "zstandard>=0.22",
            # The contract suite also runs on Redis, with a real redis-server.
            "redis>=5.0.1",
            # ... and on PostgreSQL, with a real server (initdb in a temporary folder).
            "psycopg[binary]>=3.2",
            "psycopg-pool>=3.2",
            # The example app in headless Chromium (Debian's chromium-driver),
            # and under gunicorn with 4 workers; the helpers on every Dash
            # backend (FastAPI and Quart under uvicorn), over WebSocket, async
            # and streaming callbacks, and background callbacks. The newest
            # Dash, by exact pin while 4.5.0 is a release candidate; CI also
            # runs the helpers' tests on each older Dash the README claims.
            "dash[async,fastapi,quart,diskcache]==4.5.0rc2",
            "selenium>=4.10",
            "gunicorn>=21",
        ],
    },
    classifiers=[
        "Development Status :: 5 - Production/Stable",
        "Framework :: Dash",
        "Intended Audience :: Developers",
        "License :: Public Domain",
        "Programming Language :: Python :: 3",
        "Typing :: Typed",
    ],
)
