"""What the async face does where the sync face simply blocks: CPU work off the event loop,
and one client per running loop.

The twin of :mod:`.concurrency`, function for function. Serializing a value
smaller than one chunk is quick, and runs on the loop, as does all network I/O.
A larger value is serialized (or decoded, or checked) on a thread of this
module's own, never the loop's default executor, while its chunks still go
over the loop's connections one by one: the thread hands each chunk to the
loop and waits for it to be written, so the value is never held whole.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from .serialization import Fill
from .streams import ChunkWriter

T = TypeVar("T")

# Threads for CPU work on large values, and for the SQLite engines' calls; made
# on first use, and again in a forked child (a fork keeps no thread).
_threads: concurrent.futures.ThreadPoolExecutor | None = None


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _threads
    if _threads is None:
        _threads = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="dash_database")
    return _threads


def _forget_pool() -> None:
    global _threads
    _threads = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


async def run(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` on one of this module's threads, in the caller's context (so
    that :mod:`contextvars` set by the caller hold there too)."""
    context = contextvars.copy_context()
    future = _pool().submit(context.run, function, *args)
    return await asyncio.wrap_future(future)


async def sleep(seconds: float) -> None:
    """Wait ``seconds`` without blocking the loop."""
    await asyncio.sleep(seconds)


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result, or :class:`TimeoutError` after ``seconds`` (it is cancelled)."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:  # not the builtin before Python 3.11
        raise TimeoutError(f"no answer within {seconds}s") from None


class Deadline:
    """A block that ``expire()`` interrupts (started as a task) once ``seconds`` pass.

    One timer per block: cheaper than :func:`within`, whose ``asyncio.wait_for`` makes
    a task of each call, which costs a small Redis call a quarter of its time.
    ``with Deadline(...) as expired:`` gives a function telling whether it fired.
    """

    def __init__(self, seconds: float, expire: Callable[[], Awaitable[object]]) -> None:
        self._seconds, self._expire = seconds, expire
        self._fired = False

    def _fire(self) -> None:
        self._fired = True
        _running.add(task := asyncio.get_running_loop().create_task(_awaited(self._expire())))
        task.add_done_callback(_running.discard)

    def expired(self) -> bool:
        """Whether the deadline passed, and ``expire`` was started."""
        return self._fired

    def __enter__(self) -> Callable[[], bool]:
        self._timer = asyncio.get_running_loop().call_later(self._seconds, self._fire)
        return self.expired

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()


# Tasks started by a Deadline, kept until done (the loop keeps only weak references).
_running: set[asyncio.Task[object]] = set()


class _Spilled(BaseException):
    """The value fills a chunk: serialize it again, on a thread. A ``BaseException``, so
    that the serializer's handling of its own errors lets it through."""


def _spill(chunk: bytes) -> None:
    raise _Spilled


async def fill(
    write: Fill, put: Callable[[bytes], Awaitable[None]], chunk_size: int
) -> tuple[bytes, bytes]:
    """Serialize with ``write``, handing each full chunk to ``put``; the record's head, and
    the bytes after the last full chunk.

    A value is first serialized on the loop, until it fills one chunk: most values are
    smaller, and need no thread. One that fills it is serialized again on a thread
    (so ``write`` may run twice), which waits for the loop to write each chunk.
    """
    out = ChunkWriter(_spill, chunk_size)
    try:
        head = write(out)
    except _Spilled:
        pass
    else:
        return head, out.tail()
    loop = asyncio.get_running_loop()

    def put_from_thread(chunk: bytes) -> None:
        asyncio.run_coroutine_threadsafe(_awaited(put(chunk)), loop).result()

    def serialize() -> tuple[bytes, bytes]:
        out = ChunkWriter(put_from_thread, chunk_size)
        head = write(out)
        return head, out.tail()

    return await run(serialize)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _pulled(pieces: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> Iterator[bytes]:
    """``pieces`` as a plain iterator for a thread: each piece is read by the loop."""
    while True:
        try:
            yield asyncio.run_coroutine_threadsafe(_awaited(anext(pieces)), loop).result()
        except StopAsyncIteration:
            return


async def consume(function: Callable[[Iterator[bytes]], T], pieces: AsyncIterator[bytes]) -> T:
    """``function(pieces)``: decode or check a stream. A stream of one piece (a value
    stored whole, smaller than a chunk) is done on the loop; a longer one on a thread,
    each piece read by the loop."""
    first = await anext(pieces, None)
    if first is None:
        return function(iter([]))
    second = await anext(pieces, None)
    if second is None:
        return function(iter([first]))
    loop = asyncio.get_running_loop()
    return await run(function, _pulled(_chained([first, second], pieces), loop))


async def _chained(head: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for piece in head:
        yield piece
    async for piece in rest:
        yield piece


async def transform(
    function: Callable[[Iterator[bytes]], Iterator[bytes]], pieces: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    """``function(pieces)``: a stream checked as it goes. A stream of one piece is checked
    on the loop; a longer one on a thread, its pieces handed back to the loop one by one."""
    first = await anext(pieces, None)
    second = None if first is None else await anext(pieces, None)
    if first is None or second is None:
        for checked in function(iter([] if first is None else [first])):
            yield checked
        return
    loop = asyncio.get_running_loop()
    produced = iter(function(_pulled(_chained([first, second], pieces), loop)))
    while True:
        piece: bytes | None = await run(next, produced, None)
        if piece is None:
            return
        yield piece


class Slots:
    """At most ``count`` holders at once (connections of one event loop): a task waits for a
    free slot.

    :param count: how many slots.
    """

    def __init__(self, count: int) -> None:
        self._free = asyncio.BoundedSemaphore(count)

    async def acquire(self, timeout: float) -> None:
        """Take a slot; give it back with :meth:`release`.

        :raises TimeoutError: none was free within ``timeout`` seconds.
        """
        if self._free.locked():
            await within(timeout, self._free.acquire())
        else:
            await self._free.acquire()  # free: no timer needed

    def release(self) -> None:
        """Give a slot back."""
        self._free.release()


class PerLoop(Generic[T]):
    """One resource (a client) per running event loop, released when its loop shuts down.

    A connection belongs to the loop it was made on; Flask runs each ``async def``
    view on a new loop, as ``asyncio.run`` does. The resource of a loop is released
    by ``loop.shutdown_asyncgens()``, which ``asyncio.run`` (and asgiref, under Flask)
    calls before closing it: a watcher, an async generator started on that loop,
    closes it then.

    :param make: makes the resource, on the loop that will use it.
    :param close: releases it.
    """

    def __init__(self, make: Callable[[], T], close: Callable[[T], Awaitable[None]]) -> None:
        self._make, self._close = make, close
        self._items: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )
        self._watchers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncIterator[None]
        ] = weakref.WeakKeyDictionary()
        self._last: tuple[asyncio.AbstractEventLoop, T] | None = None

    async def get(self) -> T:
        """The running loop's resource, made on first use."""
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0] is loop:
            return last[1]
        item = self._items.get(loop)
        if item is None:
            item = self._items[loop] = self._make()
            watcher = self._watch(loop, item)
            await anext(watcher)  # started: the loop now finalizes it at shutdown
            self._watchers[loop] = watcher
        self._last = (loop, item)
        return item

    async def _watch(self, loop: asyncio.AbstractEventLoop, item: T) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if self._items.get(loop) is item:  # not released by aclose already
                self._forget(loop)
                await self._close(item)

    def _forget(self, loop: asyncio.AbstractEventLoop) -> None:
        self._items.pop(loop, None)
        self._watchers.pop(loop, None)
        if self._last is not None and self._last[0] is loop:
            self._last = None

    async def aclose(self) -> None:
        """Release every loop's resource: the running loop's now, others' on their loops."""
        running = asyncio.get_running_loop()
        for loop, item in list(self._items.items()):
            self._forget(loop)
            if loop is running:
                await self._close(item)
            elif not loop.is_closed():
                asyncio.run_coroutine_threadsafe(_awaited(self._close(item)), loop)
