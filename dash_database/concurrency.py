"""What the sync face does where the async face must not block its event loop.

The I/O code is written once, async (see ``tools/unasync.py``); where the faces
differ in more than syntax, it calls this module's functions, whose async twins
in :mod:`.async_concurrency` keep the event loop free. Here, in the sync face,
each does its work in the calling thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .serialization import Fill
from .streams import ChunkWriter

T = TypeVar("T")


def sleep(seconds: float) -> None:
    """Wait ``seconds``."""
    time.sleep(seconds)


def fill(write: Fill, put: Callable[[bytes], None], chunk_size: int) -> tuple[bytes, bytes]:
    """Serialize with ``write``, handing each full chunk to ``put`` as it fills; the record's
    head, and the bytes after the last full chunk."""
    out = ChunkWriter(put, chunk_size)
    head = write(out)
    return head, out.tail()


def consume(function: Callable[[Iterator[bytes]], T], pieces: Iterator[bytes]) -> T:
    """``function(pieces)``: decode or check a stream of pieces."""
    return function(pieces)


def transform(
    function: Callable[[Iterator[bytes]], Iterator[bytes]], pieces: Iterator[bytes]
) -> Iterator[bytes]:
    """``function(pieces)``: a stream of pieces checked as it goes."""
    return function(pieces)


def within(seconds: float, value: T) -> T:
    """``value``: the sync face's sockets time out by themselves."""
    return value


class Deadline:
    """Nothing: the sync face's sockets time out by themselves (see the async twin)."""

    def __init__(self, seconds: float, expire: Callable[[], object]) -> None:
        """Ignore both."""

    def expired(self) -> bool:
        """Never: a socket's timeout raises instead."""
        return False

    def __enter__(self) -> Callable[[], bool]:
        return self.expired

    def __exit__(self, *exc_info: object) -> None:
        pass


class Slots:
    """At most ``count`` holders at once (connections of one process): a thread waits for a
    free slot.

    :param count: how many slots.
    """

    def __init__(self, count: int) -> None:
        self._free = threading.BoundedSemaphore(count)

    def acquire(self, timeout: float) -> None:
        """Take a slot; give it back with :meth:`release`.

        :raises TimeoutError: none was free within ``timeout`` seconds.
        """
        if not self._free.acquire(timeout=timeout):
            raise TimeoutError(f"no connection free within {timeout}s")

    def release(self) -> None:
        """Give a slot back."""
        self._free.release()


class PerLoop(Generic[T]):
    """One resource (a client), made on first use.

    :param make: makes it.
    :param close: releases it.
    """

    def __init__(self, make: Callable[[], T], close: Callable[[T], None]) -> None:
        self._make, self._close = make, close
        self._item: T | None = None

    def get(self) -> T:
        """The resource."""
        if self._item is None:
            self._item = self._make()
        return self._item

    def close(self) -> None:
        """Release the resource, if it was made."""
        if self._item is not None:
            self._close(self._item)
