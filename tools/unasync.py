"""Write the sync twin of each async module: the async code is the one source.

The package's I/O paths (the Redis engine, the engine contract, and the calls above
it) are written once, as ``async`` code in a module whose name starts with
``async_``; this script writes its sync twin beside it, without the prefix, by
plain text rules (:data:`RULES`). What differs between the faces in more than
syntax (an event loop's clients, running CPU work off the loop) lives in
hand-written pairs such as ``concurrency.py`` and ``async_concurrency.py``, which
this script leaves alone.

Run ``python tools/unasync.py`` after changing a source; ``.ci/run`` runs it with
``--check``, which exits 1 and names each twin that is not what its source gives.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: Each async source, from the package's root; its twin drops the ``async_`` prefix.
SOURCES = (
    "dash_database/backends/async_base.py",
    "dash_database/backends/async_contention.py",
    "dash_database/backends/redis/async_server.py",
    "dash_database/backends/redis/async_chunks.py",
    "dash_database/backends/redis/async_counters.py",
    "dash_database/backends/redis/async_renaming.py",
    "dash_database/backends/redis/async_migration.py",
    "dash_database/backends/redis/async_engine.py",
    "dash_database/backends/postgres/async_server.py",
    "dash_database/backends/postgres/async_chunks.py",
    "dash_database/backends/postgres/async_renaming.py",
    "dash_database/backends/postgres/async_writing.py",
    "dash_database/backends/postgres/async_engine.py",
    "dash_database/async_purging.py",
    "dash_database/async_copying.py",
    "dash_database/async_resigning.py",
    "dash_database/async_converting.py",
    "dash_database/async_checking.py",
    "dash_database/async_inspection.py",
    "dash_database/async_database.py",
)
#: ``(pattern, replacement)``, applied in order to the whole text.
RULES = (
    # What only the async face has: a block between two marker lines, or one line
    # marked at its end.
    (r"(?s)^[ \t]*# begin async only\n.*?^[ \t]*# end async only\n", ""),
    (r"^[^\n]*# async only\n", ""),
    (r"\basync def\b", "def"),
    (r"\basync (with|for)\b", r"\1"),
    (r"\bawait ", ""),
    (r"\b__a(enter|exit|iter|next)__\b", r"__\1__"),
    (r"\baclose\b", "close"),
    (r"\banext\(", "next("),
    (r"\bStopAsyncIteration\b", "StopIteration"),
    (r"\bredis\.asyncio\b", "redis"),
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"\bAsync(Iterator|Iterable|Generator)\b", r"\1"),
    (r"\bAwaitable\[([^\[\]]*)\]", r"\1"),
    (r"(?<![A-Za-z0-9])Async([A-Z]\w*)", r"\1"),
    (r"(?<![A-Za-z0-9])async_(\w+)", r"\1"),
    # "AsyncX | X", an argument either face takes, is X alone in the sync face.
    (r"\b(\w+) \| \1\b", r"\1"),
)
#: Removes unused or repeated imports, and sorts them.
TIDY = ["ruff", "check", "--fix-only", "--exit-zero", "--select", "F401,F811,I"]
HEADER = "# Written by tools/unasync.py from {source}: edit that file, then run the script.\n"


def twin_of(source: pathlib.Path) -> pathlib.Path:
    """Where the sync twin of ``source`` is written."""
    return source.with_name(source.name.removeprefix("async_"))


def unasync(text: str, source: pathlib.Path) -> str:
    """The sync twin of an async module's ``text``, formatted as ruff formats the package."""
    for pattern, replacement in RULES:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    text = HEADER.format(source=source.name) + text
    # The rules leave imports that only the async face uses, and shorten lines that
    # ruff then joins: fix those, and format, as CI checks the package.
    for command in (TIDY, ["ruff", "format"]):
        done = subprocess.run(
            [*command, "--stdin-filename", str(twin_of(source)), "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
        )
        text = done.stdout
    return text


def main(argv: list[str]) -> int:
    """Write every twin, or with ``--check`` name those that differ; the exit status."""
    check = "--check" in argv
    stale = []
    for name in SOURCES:
        source = ROOT / name
        twin, expected = twin_of(source), unasync(source.read_text(), source)
        if twin.exists() and twin.read_text() == expected:
            continue
        if check:
            stale.append(str(twin.relative_to(ROOT)))
        else:
            twin.write_text(expected)
    for name in stale:
        print(f"{name} is not what tools/unasync.py writes from its source: run the script")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
