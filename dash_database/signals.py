"""Removing private temporary stores when the process is told to stop (SIGTERM, SIGHUP).

``docker stop``, systemd and most supervisors stop a process with SIGTERM (or
SIGHUP), whose default action ends it at once, without ``atexit``: a private
temporary store, holding every user's data, would stay in /tmp. So, while
such a store is open, this module handles those two signals where their
handler is the default, or Dash's (Dash 4.5 installs one at import that tears
down its streams, then ends the process as the default would): an application
or server with its own handler (gunicorn, uvicorn) keeps it, and a signal that
is ignored (``nohup``) stays ignored. The handler removes the stores this
process created (never a parent's, in a forked child), then hands the signal to
the handler it replaced, or ends the process as the signal would have.
SIGKILL and ``os._exit`` cannot be caught: for those, give ``DashDatabase``
a path under your control.

The registry below is module state, set up on the first temporary store; a
forked child starts with the default handling back (see the end of the module).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))

# Folder -> the pid of the process that created it.
_FOLDERS: dict[str, int] = {}
_LOCK = threading.Lock()
# Signal -> the handler ours replaced: the default, or Dash's.
_REPLACED: dict[int, Any] = {}


def _replaceable(handler: Any) -> bool:
    """Whether ``handler`` ends the process at once, so that ours must run first."""
    return handler == signal.SIG_DFL or bool(getattr(handler, "_dash_stream_shutdown", False))


def remove_on_signal(folder: str) -> None:
    """Remove ``folder`` if this process is stopped by SIGTERM or SIGHUP (see the module)."""
    with _LOCK:
        _FOLDERS[folder] = os.getpid()
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers; it may still do so later
    for signum in SIGNALS:
        handler = signal.getsignal(signum)
        if handler is not _on_signal and _replaceable(handler):
            _REPLACED[signum] = handler
            signal.signal(signum, _on_signal)


def forget(folder: str) -> None:
    """The folder is gone (closed or removed at exit): nothing to do for it on a signal.

    With no folder left, the signals get back the handling they had.
    """
    with _LOCK:
        _FOLDERS.pop(folder, None)
        left = bool(_FOLDERS)
    if left or threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, _REPLACED.pop(signum, signal.SIG_DFL))


def _on_signal(signum: int, frame: FrameType | None) -> None:
    with _LOCK:
        mine = [folder for folder, pid in _FOLDERS.items() if pid == os.getpid()]
        _FOLDERS.clear()
    for folder in mine:
        shutil.rmtree(folder, ignore_errors=True)
    # No logging here: a signal handler may run while the main thread holds
    # the logging lock. Hand over to the handler we replaced, or end as the
    # signal would have, so the parent sees the usual status.
    replaced = _REPLACED.pop(signum, signal.SIG_DFL)
    signal.signal(signum, replaced)
    if callable(replaced):
        replaced(signum, frame)
    else:
        os.kill(os.getpid(), signum)


def _after_fork_in_child() -> None:
    # A forked child never removes its parent's stores, so it needs no handler.
    # And it must not keep one: CPython often fails to run a Python-level handler
    # in a freshly forked child blocked in a read (39 of 60 tries hung here), so
    # the child would survive SIGTERM. The default action always ends it.
    for signum in SIGNALS:
        if signal.getsignal(signum) is _on_signal:
            signal.signal(signum, signal.SIG_DFL)
    _REPLACED.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
