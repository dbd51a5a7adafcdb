"""A private temporary store goes when the process is told to stop: SIGTERM and SIGHUP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")

CHILD = """
import os, signal, sys
from dash_database import DashDatabase

mode, marker = sys.argv[1], sys.argv[2]
# A process's signals start as its parent left them: a test run under nohup must not make
# every child ignore SIGHUP. Each mode starts from the defaults, as a server's process does.
for signum in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(signum, signal.SIG_DFL)
if mode == "own-handler":
    def mine(signum, frame):
        open(marker, "w").write("the app's handler ran")
        sys.exit(0)
    signal.signal(signal.SIGTERM, mine)
if mode == "nohup":
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
if mode == "dash":
    import dash  # Dash 4.5 installs a SIGTERM handler that tears down its streams
db = DashDatabase()
db.store_user_value("u", "k", "v")
print(os.path.dirname(db._backend.location), flush=True)
if mode == "fork":
    ready, tell = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(tell, b"r")  # the fork is done: the grandchild waits to be killed
        sys.stdin.readline()
        os._exit(0)
    os.read(ready, 1)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    print(os.WTERMSIG(status), flush=True)
for line in sys.stdin:  # answers each line, to show that it still runs
    print("alive", flush=True)
"""


def start(mode: str, tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    """A child holding a temporary store; return it and the store's folder."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(tmp_path / "marker")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    folder = Path(child.stdout.readline().strip())
    assert folder.is_dir()
    return child, folder


def still_runs(child: subprocess.Popen[str]) -> bool:
    """Whether the child answers a line."""
    assert child.stdin is not None
    assert child.stdout is not None
    child.stdin.write("ping\n")
    child.stdin.flush()
    return child.stdout.readline() == "alive\n"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_the_signal_removes_the_temp_store_and_ends_the_process_as_usual(
    signum: int, tmp_path: Path
) -> None:
    """The store's folder is gone, and the exit status is the signal's."""
    child, folder = start("default", tmp_path)
    child.send_signal(signum)
    assert child.wait(timeout=30) == -signum
    assert not folder.exists()


def test_under_dash_the_signal_removes_the_temp_store_too(tmp_path: Path) -> None:
    """In a Dash app's process, whose SIGTERM handler may be Dash's, the store still goes,
    and the process ends as the signal ends it."""
    pytest.importorskip("dash", reason="the [dash] extra is not installed")
    child, folder = start("dash", tmp_path)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM
    assert not folder.exists()


def test_an_applications_own_handler_is_kept(tmp_path: Path) -> None:
    """A SIGTERM handler installed before the store runs; the store goes at the normal exit."""
    child, folder = start("own-handler", tmp_path)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == 0
    assert (tmp_path / "marker").read_text() == "the app's handler ran"
    assert not folder.exists()


def test_an_ignored_sighup_stays_ignored(tmp_path: Path) -> None:
    """Under nohup, SIGHUP removes nothing and the process keeps running."""
    child, folder = start("nohup", tmp_path)
    child.send_signal(signal.SIGHUP)
    assert still_runs(child)
    assert folder.is_dir()
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM
    assert not folder.exists()


def test_a_forked_child_never_removes_its_parents_temp_store(tmp_path: Path) -> None:
    """A forked child stopped by SIGTERM dies as usual and leaves the parent's store alone."""
    child, folder = start("fork", tmp_path)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == str(int(signal.SIGTERM))
    assert folder.is_dir()
    assert still_runs(child)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == -signal.SIGTERM
    assert not folder.exists()


def test_closing_the_last_temp_store_gives_the_handling_back() -> None:
    """With no temporary store open, SIGTERM's handler is the one it had before (the
    default, or Dash 4.5's, which this process has once Dash is imported)."""
    from dash_database import DashDatabase

    before = signal.getsignal(signal.SIGTERM)
    db = DashDatabase()
    assert signal.getsignal(signal.SIGTERM) is not before
    db.close()
    assert signal.getsignal(signal.SIGTERM) is before
    assert os.getpid()  # the test process is untouched
