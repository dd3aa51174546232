"""Connection pools: :class:`Pool` (threads) and :class:`AsyncPool` (asyncio).

A pool keeps up to ``max_connections`` clients to one server.  An idle
connection is checked with NOOP before reuse, retired after
``max_messages_per_connection`` messages or ``idle_timeout`` seconds, and
replaced when it was dropped or answered 421.  A rate limit, when set, is
shared by every connection and enforced before each message is sent.
``send_many`` spreads messages over the connections, pipelining on each, and
returns (``AsyncPool``: yields) one outcome per message, in order; a message
that was not sent because its connection broke is tried once more on
another connection, and one that may have been delivered never is.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from ._core.envelope import SendResult
from ._core.pooling import Action, PoolPolicy, RateLimiter, Record, retryable
from .aio import AsyncClient
from .client import Client
from .errors import SMTPError

__all__ = ["AsyncPool", "Pool"]

Outcome = SendResult | BaseException

#: Messages a worker takes from the queue at a time (pipelined on its connection).
CHUNK = 32


class _Base:
    def __init__(
        self,
        max_connections: int,
        max_messages_per_connection: int,
        idle_timeout: float,
        check_after: float,
        rate_limit: float | None,
        rate_burst: int | None,
        window: int,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.policy = PoolPolicy(max_messages_per_connection, idle_timeout, check_after)
        self._limiter = RateLimiter(rate_limit, rate_burst) if rate_limit else None
        self.window = window
        self._created = 0

    @staticmethod
    def _resendable(item: object) -> bool:
        """A message from a file or an iterator cannot be read a second time."""
        message = item[0] if isinstance(item, tuple) and item else item
        return isinstance(message, (bytes, bytearray)) or hasattr(message, "as_bytes")

    def _chunks(self, messages: Iterable[object]) -> Iterator[list[tuple[int, object]]]:
        items = enumerate(messages)
        while chunk := list(itertools.islice(items, CHUNK)):
            yield chunk


class Pool(_Base):
    """A thread-safe pool of :class:`Client` connections to one server.

    Args:
        host, port: the server.
        max_connections: connections open at the same time.
        max_messages_per_connection: then the connection is replaced.
        idle_timeout: idle connections older than this are closed.
        check_after: idle connections older than this are checked with NOOP.
        rate_limit: messages per second over the whole pool, or None.
        rate_burst: how many messages may go at once under the rate limit.
        window: BDAT transactions in flight per connection (``send_many``).
        **client_options: passed to every :class:`Client` (tls, username, ...).
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        max_connections: int = 10,
        max_messages_per_connection: int = 100,
        idle_timeout: float = 60.0,
        check_after: float = 5.0,
        rate_limit: float | None = None,
        rate_burst: int | None = None,
        window: int = 8,
        **client_options: Any,
    ) -> None:
        super().__init__(
            max_connections, max_messages_per_connection, idle_timeout, check_after,
            rate_limit, rate_burst, window,
        )  # fmt: skip
        Client(host, port, **client_options)  # validate the options now
        self._factory: Callable[[], Client] = lambda: Client(host, port, **client_options)
        self._idle: list[tuple[Client, Record]] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._closed = False

    # -- connections -------------------------------------------------------------

    def _acquire(self) -> tuple[Client, Record]:
        self._slots.acquire()
        try:
            while True:
                with self._lock:
                    if self._closed:
                        raise RuntimeError("the pool is closed")
                    entry = self._idle.pop() if self._idle else None
                if entry is None:
                    client = self._factory()
                    client.connect()
                    now = time.monotonic()
                    self._created += 1
                    return client, Record(now, now)
                client, record = entry
                action = self.policy.action(record, time.monotonic())
                if action is Action.REUSE and client.connected:
                    return entry
                if action is Action.CHECK and client.connected:
                    try:
                        client.noop()
                        return entry
                    except (SMTPError, OSError):
                        pass
                client.quit() if client.connected else client.close()
        except BaseException:
            self._slots.release()
            raise

    def _release(self, client: Client, record: Record) -> None:
        record.last_used = time.monotonic()
        with self._lock:
            keep = client.connected and not self._closed
            if keep:
                self._idle.append((client, record))
        if not keep:
            client.close()
        self._slots.release()

    def _wait_rate(self, n: int) -> None:
        if self._limiter is None:
            return
        with self._lock:
            delay = self._limiter.reserve(time.monotonic(), n)
        if delay > 0:
            time.sleep(delay)

    # -- sending -----------------------------------------------------------------

    def send(self, message: object, **options: Any) -> SendResult:
        """Send one message on a pooled connection (see :meth:`Client.send`)."""
        for attempt in (1, 2):
            self._wait_rate(1)
            client, record = self._acquire()
            try:
                result = client.send(message, **options)
                record.messages += 1
                return result
            except SMTPError as exc:
                if attempt == 2 or not retryable(exc) or not self._resendable(message):
                    raise
            finally:
                self._release(client, record)
        raise AssertionError("unreachable")  # pragma: no cover

    def send_many(self, messages: Iterable[object]) -> list[Outcome]:
        """Send every message over up to ``max_connections`` connections; outcomes in order.

        Items are messages or ``(message, sender, recipients)`` tuples, as for
        :meth:`Client.send_many`.
        """
        work: queue.Queue[list[tuple[int, object]]] = queue.Queue()
        for chunk in self._chunks(messages):
            work.put(chunk)
        outcomes: dict[int, Outcome] = {}
        retry: queue.Queue[list[tuple[int, object]]] = queue.Queue()
        workers = min(self.max_connections, work.qsize())
        threads = [
            threading.Thread(target=self._worker, args=(work, retry, outcomes), daemon=True)
            for _ in range(workers)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Messages whose connection broke before they were sent: once more.
        while not retry.empty():
            self._run_chunk(retry.get(), outcomes, None)
        return [outcomes[i] for i in sorted(outcomes)]

    def _worker(
        self,
        work: queue.Queue[list[tuple[int, object]]],
        retry: queue.Queue[list[tuple[int, object]]],
        outcomes: dict[int, Outcome],
    ) -> None:
        while True:
            try:
                chunk = work.get_nowait()
            except queue.Empty:
                return
            self._run_chunk(chunk, outcomes, retry)

    def _run_chunk(
        self,
        chunk: list[tuple[int, object]],
        outcomes: dict[int, Outcome],
        retry: queue.Queue[list[tuple[int, object]]] | None,
    ) -> None:
        self._wait_rate(len(chunk))
        try:
            client, record = self._acquire()
        except (SMTPError, OSError) as exc:
            for index, _ in chunk:
                outcomes[index] = exc
            return
        try:
            results = client.send_many([item for _, item in chunk], window=self.window)
            record.messages += len(chunk)
        finally:
            self._release(client, record)
        again = []
        for (index, item), outcome in zip(chunk, results, strict=True):
            if retry is not None and retryable(outcome) and self._resendable(item):
                again.append((index, item))
            outcomes[index] = outcome
        if again and retry is not None:
            retry.put(again)

    # -- lifecycle ---------------------------------------------------------------

    @property
    def connections_opened(self) -> int:
        """How many connections this pool has opened so far."""
        return self._created

    def close(self) -> None:
        """QUIT and close every idle connection; the pool cannot be used after."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for client, _ in idle:
            client.quit()

    def __enter__(self) -> Pool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncPool(_Base):
    """A pool of :class:`AsyncClient` connections to one server; see :class:`Pool`."""

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        max_connections: int = 10,
        max_messages_per_connection: int = 100,
        idle_timeout: float = 60.0,
        check_after: float = 5.0,
        rate_limit: float | None = None,
        rate_burst: int | None = None,
        window: int = 8,
        **client_options: Any,
    ) -> None:
        super().__init__(
            max_connections, max_messages_per_connection, idle_timeout, check_after,
            rate_limit, rate_burst, window,
        )  # fmt: skip
        AsyncClient(host, port, **client_options)  # validate the options now
        self._factory: Callable[[], AsyncClient] = lambda: AsyncClient(host, port, **client_options)
        self._idle: list[tuple[AsyncClient, Record]] = []
        self._slots: asyncio.Semaphore | None = None
        self._closed = False

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_connections)
        return self._slots

    async def _acquire(self) -> tuple[AsyncClient, Record]:
        await self._semaphore().acquire()
        try:
            while True:
                if self._closed:
                    raise RuntimeError("the pool is closed")
                if not self._idle:
                    client = self._factory()
                    await client.connect()
                    now = time.monotonic()
                    self._created += 1
                    return client, Record(now, now)
                client, record = self._idle.pop()
                action = self.policy.action(record, time.monotonic())
                if action is Action.REUSE and client.connected:
                    return client, record
                if action is Action.CHECK and client.connected:
                    try:
                        await client.noop()
                        return client, record
                    except (SMTPError, OSError):
                        pass
                if client.connected:
                    await client.quit()
                else:
                    client.close()
        except BaseException:
            self._semaphore().release()
            raise

    def _release(self, client: AsyncClient, record: Record) -> None:
        record.last_used = time.monotonic()
        if client.connected and not self._closed:
            self._idle.append((client, record))
        else:
            client.close()
        self._semaphore().release()

    async def _wait_rate(self, n: int) -> None:
        if self._limiter is not None:
            delay = self._limiter.reserve(time.monotonic(), n)
            if delay > 0:
                await asyncio.sleep(delay)

    async def send(self, message: object, **options: Any) -> SendResult:
        """Send one message on a pooled connection (see :meth:`AsyncClient.send`)."""
        for attempt in (1, 2):
            await self._wait_rate(1)
            client, record = await self._acquire()
            try:
                result = await client.send(message, **options)
                record.messages += 1
                return result
            except SMTPError as exc:
                if attempt == 2 or not retryable(exc) or not self._resendable(message):
                    raise
            finally:
                self._release(client, record)
        raise AssertionError("unreachable")  # pragma: no cover

    async def send_many(self, messages: Iterable[object]) -> AsyncIterator[Outcome]:
        """Send every message over up to ``max_connections`` connections.

        Yields one outcome per message, in the order of ``messages``, as soon
        as it and every earlier one are known.
        """
        outcomes: dict[int, Outcome] = {}
        ready = asyncio.Event()
        chunks = self._chunks(messages)
        total = 0
        tasks: set[asyncio.Task[None]] = set()

        async def worker() -> None:
            nonlocal total
            for chunk in chunks:
                total = max(total, chunk[-1][0] + 1)
                await self._run_chunk(chunk, outcomes, retry=True)
                ready.set()

        for _ in range(self.max_connections):
            tasks.add(asyncio.ensure_future(worker()))
        done = asyncio.ensure_future(asyncio.gather(*tasks))
        try:
            position = 0
            while True:
                while position in outcomes:
                    yield outcomes.pop(position)
                    position += 1
                if done.done() and position not in outcomes:
                    done.result()  # re-raise a worker's unexpected error
                    if position >= total:
                        return
                    raise RuntimeError(f"no outcome for message {position}")  # a bug
                ready.clear()
                if not done.done():
                    waiter = asyncio.ensure_future(ready.wait())
                    either: set[asyncio.Future[Any]] = {waiter, done}
                    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
        finally:
            for task in tasks:
                task.cancel()

    async def _run_chunk(
        self, chunk: list[tuple[int, object]], outcomes: dict[int, Outcome], *, retry: bool
    ) -> None:
        await self._wait_rate(len(chunk))
        try:
            client, record = await self._acquire()
        except (SMTPError, OSError) as exc:
            for index, _ in chunk:
                outcomes[index] = exc
            return
        results: list[Outcome] = []
        try:
            async for outcome in client.send_many([item for _, item in chunk], window=self.window):
                results.append(outcome)
            record.messages += len(chunk)
        finally:
            self._release(client, record)
        again = []
        for (index, item), outcome in zip(chunk, results, strict=True):
            if retry and retryable(outcome) and self._resendable(item):
                again.append((index, item))
            else:
                outcomes[index] = outcome
        if again:
            await self._run_chunk(again, outcomes, retry=False)

    @property
    def connections_opened(self) -> int:
        """How many connections this pool has opened so far."""
        return self._created

    async def close(self) -> None:
        """QUIT and close every idle connection."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(client.quit() for client, _ in idle), return_exceptions=True)

    async def __aenter__(self) -> AsyncPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
