"""What really differs between the sync and the asyncio clients, and nothing else.

The drivers, clients and pools are written once, for asyncio, in
:mod:`postwire.client._async`; ``scripts/unasync.py`` generates
:mod:`postwire.client._sync` from them by dropping ``async``/``await`` and
renaming ``AsyncX`` to ``X``.  The names below come in such pairs: threads
against tasks, blocking calls against awaited ones, and how a send that is
past its commit point survives cancellation.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, Protocol, TypeVar

__all__ = [
    "READ_SIZE",
    "AsyncExclusive",
    "AsyncLock",
    "AsyncQueue",
    "AsyncSemaphore",
    "AsyncTLSUpgrade",
    "AsyncWorkers",
    "Exclusive",
    "Lock",
    "Queue",
    "Semaphore",
    "TLSUpgrade",
    "Workers",
    "acall_hook",
    "acomplete_after_commit",
    "aiter_content",
    "aresolve_token",
    "asleep",
    "call_hook",
    "complete_after_commit",
    "iter_content",
    "resolve_token",
    "sleep",
]

T = TypeVar("T")

#: Size of the pieces read from message files and cut from large byte strings.
READ_SIZE = 1 << 20

#: The client's TLS handshake after STARTTLS's 220, as the driver calls it.
AsyncTLSUpgrade = Callable[[], Awaitable[None]]
TLSUpgrade = Callable[[], None]


class Committable(Protocol):
    """A driver: ``committed`` turns true once a message's end-of-message hook ran."""

    committed: bool


# --- locks: threads share a pool; tasks never await inside its critical sections -------


class AsyncLock:
    """A lock for code that never awaits while holding it: nothing to do on one loop."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


Lock = threading.Lock


class AsyncExclusive:
    """One operation at a time on a connection: other tasks wait for their turn, in order.

    Free, it costs an attribute check (a send is not slowed by a lock it never waits
    for); taken, a waiter gets the connection handed over when the holder leaves.  A task
    that comes back while it holds it (a hook that sends on the same client) would wait for
    itself forever: that is a ``RuntimeError`` instead.
    """

    def __init__(self) -> None:
        self._owner: asyncio.Task[Any] | None = None
        self._waiters: deque[tuple[asyncio.Task[Any] | None, asyncio.Future[None]]] = deque()

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        if self._owner is None:
            self._owner = task
            return
        if self._owner is task:
            raise RuntimeError(_BUSY)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((task, waiter))
        try:
            await waiter  # _release hands the connection over before waking us
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed over just as we were cancelled: pass it on
            else:
                self._waiters.remove((task, waiter))
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        while self._waiters:
            task, waiter = self._waiters.popleft()
            if not waiter.done():
                self._owner = task
                waiter.set_result(None)
                return
        self._owner = None


class Exclusive:
    """:class:`AsyncExclusive` for threads: one thread at a time uses the connection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None

    def __enter__(self) -> None:
        me = threading.get_ident()
        if self._owner == me:
            raise RuntimeError(_BUSY)
        self._lock.acquire()
        self._owner = me

    def __exit__(self, *exc_info: object) -> None:
        self._owner = None
        self._lock.release()


_BUSY = (
    "this client is already in the middle of an operation in this same task or thread "
    "(a hook that uses the client it was called from?): it would wait for itself"
)


class AsyncSemaphore:
    """An :class:`asyncio.Semaphore` made on first use, inside the running loop."""

    def __init__(self, value: int) -> None:
        self._value = value
        self._semaphore: asyncio.Semaphore | None = None

    def _get(self) -> asyncio.Semaphore:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self._value)
        return self._semaphore

    async def acquire(self) -> None:
        await self._get().acquire()

    def release(self) -> None:
        self._get().release()


class Semaphore:
    """A bounded semaphore for threads, with the interface of :class:`AsyncSemaphore`."""

    def __init__(self, value: int) -> None:
        self._semaphore = threading.BoundedSemaphore(value)

    def acquire(self) -> None:
        self._semaphore.acquire()

    def release(self) -> None:
        self._semaphore.release()


AsyncQueue = asyncio.Queue
Queue = queue.Queue

asleep = asyncio.sleep
sleep = time.sleep


# --- workers: tasks on the loop, or daemon threads ------------------------------------------


class AsyncWorkers:
    """Runs ``count`` copies of ``work`` as tasks; ``stop()`` cancels them."""

    def __init__(self, work: Callable[[], Coroutine[Any, Any, None]], count: int) -> None:
        self._tasks = [asyncio.ensure_future(work()) for _ in range(count)]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()


class Workers:
    """Runs ``count`` copies of ``work`` in daemon threads.

    A thread cannot be cancelled: ``stop()`` leaves each one to finish what it
    holds, and the work function itself checks whether to take more.
    """

    def __init__(self, work: Callable[[], None], count: int) -> None:
        self._threads = [threading.Thread(target=work, daemon=True) for _ in range(count)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        return None


# --- callbacks that may be coroutines on the asyncio side -----------------------------------


async def acall_hook(hook: Callable[[], object]) -> None:
    """Run the end-of-message hook, awaiting it if it is a coroutine function."""
    result = hook()
    if inspect.isawaitable(result):
        await result


def call_hook(hook: Callable[[], object]) -> None:
    """Run the end-of-message hook."""
    hook()


async def aresolve_token(token: object) -> object:
    """A token provider's result: awaited when the provider is async."""
    if inspect.isawaitable(token):
        return await token
    return token


def resolve_token(token: object) -> object:
    """A token provider's result (checked to be a str by the caller)."""
    return token


# --- the commit point under cancellation ----------------------------------------------------


async def acomplete_after_commit(send: Awaitable[T], driver: Committable) -> T:
    """Await ``send``; a cancellation after the commit point waits for it to finish.

    Before the end-of-message hook has run, cancelling abandons the message
    (the server never sees the final ``.``).  After it, the send is completed
    first, as Racket documents for a break after the hook, and then the
    cancellation goes on.
    """
    inner = asyncio.ensure_future(send)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        if not driver.committed:
            inner.cancel()
        try:
            await inner
        except BaseException:
            pass
        raise


def complete_after_commit(send: T, driver: Committable) -> T:
    """A blocking send has already completed: cancellation goes through ``CancelHandle``."""
    return send


# --- message content ------------------------------------------------------------------------


def _chunk_bytes(content: bytes) -> Iterator[bytes]:
    if len(content) <= READ_SIZE:
        yield content
        return
    view = memoryview(content)
    for i in range(0, len(content), READ_SIZE):
        yield bytes(view[i : i + READ_SIZE])


def _check_chunk(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"message chunks must be bytes, not {type(chunk).__name__}")


def iter_content(content: object) -> Iterator[bytes]:
    """The chunks of a message: bytes, a binary file, or an iterable of bytes."""
    if content is None:
        return
    if isinstance(content, bytes):
        yield from _chunk_bytes(content)
        return
    read = getattr(content, "read", None)
    if read is not None:
        while chunk := read(READ_SIZE):
            if isinstance(chunk, str):
                raise TypeError("message file must be opened in binary mode ('rb')")
            yield _check_chunk(chunk)
        return
    if hasattr(content, "__aiter__"):
        raise TypeError("an async iterable can only be sent with AsyncClient")
    for chunk in content:  # type: ignore[attr-defined]
        yield _check_chunk(chunk)


async def aiter_content(content: object) -> AsyncIterator[bytes]:
    """:func:`iter_content`, plus async iterables of bytes."""
    if hasattr(content, "__aiter__"):
        async for chunk in content:
            yield _check_chunk(chunk)
        return
    for chunk in iter_content(content):
        yield chunk
