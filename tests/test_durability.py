"""A writer killed at random moments loses no acknowledged write and never corrupts the file."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from dash_database import DashDatabase

# Prints each index once its write has returned, i.e. is acknowledged. Every
# third value spans several chunks, so kills also land inside transactions.
WRITER = """
import sys
from dash_database import DashDatabase
db = DashDatabase(sys.argv[1])
db._backend.chunk_size = 4096
start = int(sys.argv[2])
for index in range(start, start + 100_000):
    value = [index] * (3000 if index % 3 == 0 else 1)
    db.store_user_value("writer", index, value)
    print(index, flush=True)
"""

READER = """
import sys
from dash_database import DashDatabase
db = DashDatabase(sys.argv[1])
while True:
    for key in db.list_stored_user_keys("writer")[-20:]:
        value = db.get_user_value("writer", key)
        assert value is None or value[0] == key, (key, value)
"""


def test_sigkilled_writer_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """20 SIGKILLs of a writer while another process reads: file intact, every ack present."""
    path = str(tmp_path / "crash.sqlite3")
    DashDatabase(path).close()
    reader = subprocess.Popen([sys.executable, "-c", READER, path], stderr=subprocess.PIPE)
    rng = random.Random(20)
    acknowledged: list[int] = []
    try:
        for _ in range(20):
            start = acknowledged[-1] + 1 if acknowledged else 0
            writer = subprocess.Popen(
                [sys.executable, "-c", WRITER, path, str(start)], stdout=subprocess.PIPE, text=True
            )
            assert writer.stdout is not None
            for _ in range(rng.randint(1, 40)):
                acknowledged.append(int(writer.stdout.readline()))
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            with sqlite3.connect(path) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            with DashDatabase(path) as db:
                stored = set(db.list_stored_user_keys("writer"))
                assert set(acknowledged) <= stored
                for index in acknowledged[-5:]:
                    assert db.get_user_value("writer", index)[0] == index
        assert reader.poll() is None, reader.stderr.read() if reader.stderr else ""
    finally:
        reader.kill()
        reader.wait()


def test_second_open_in_one_process_keeps_the_file_locks(tmp_path: Path) -> None:
    """Opening the file again in a process keeps its locks, so no other process deletes the WAL."""
    path = tmp_path / "twice.sqlite3"
    db = DashDatabase(path)
    db.store_user_value(1, "k", "v")
    DashDatabase(path).close()
    # A process that closes its last connection while it holds the only lock
    # on the file checkpoints and deletes the WAL: here ours must still count.
    other = f"from dash_database import DashDatabase; DashDatabase({str(path)!r}).close()"
    subprocess.run([sys.executable, "-c", other], check=True)
    assert Path(f"{path}-wal").exists()
    db.store_user_value(1, "k2", "v2")
    assert db.list_stored_user_keys(1) == ["k", "k2"]
    db.close()
