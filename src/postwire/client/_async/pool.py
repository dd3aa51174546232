"""A pool of client connections to one server.

A pool keeps up to ``max_connections`` clients.  An idle connection is
checked with NOOP before reuse, retired after ``max_messages_per_connection``
messages or ``idle_timeout`` seconds, and replaced when it was dropped or
answered 421.  A rate limit, when set, is shared by every connection and
enforced before each message is sent.  ``send_many`` spreads messages over
the connections, pipelining on each, and returns one outcome per message, in
order; a message that was not sent because its connection broke is tried once
more on another connection, and one that may have been delivered never is.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..._core.envelope import SendResult
from ..._core.errors import SMTPError
from ..._core.outcomes import content_rereadable, may_resend_elsewhere
from ..._core.pooling import Action, PoolPolicy, RateLimiter, Record
from ...config import account_options, url_options
from .._concurrency import AsyncLock, AsyncQueue, AsyncSemaphore, AsyncWorkers, asleep
from .client import AsyncClient

__all__ = ["AsyncPool"]

Outcome = SendResult | BaseException
P = TypeVar("P", bound="AsyncPool")
Chunk = list[tuple[int, object]]

#: Messages a worker takes from ``send_many`` at a time (pipelined on its connection).
MESSAGES_PER_TAKE = 32


class AsyncPool:
    """A pool of client connections to one server, safe to share.

    Args:
        host: the server's name or address (or a Unix socket's path).
        port: the server's port (the client's default when None).
        max_connections: connections open at the same time.
        max_messages_per_connection: then the connection is replaced.
        idle_timeout: idle connections older than this are closed.
        check_after: idle connections older than this are checked with NOOP.
        rate_limit: messages per second over the whole pool, or None.
        rate_burst: how many messages may go at once under the rate limit.
        window: BDAT transactions in flight per connection (``send_many``).
        **client_options: passed to every client (``tls``, ``username``, ``dkim``...: the
            arguments of :class:`~postwire.Client`).
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
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.max_connections = max_connections
        self.policy = PoolPolicy(max_messages_per_connection, idle_timeout, check_after)
        self._limiter = RateLimiter(rate_limit, rate_burst) if rate_limit else None
        self.window = window
        AsyncClient(host, port, **client_options)  # validate the options now
        self._factory: Callable[[], AsyncClient] = lambda: AsyncClient(host, port, **client_options)
        self._idle: list[tuple[AsyncClient, Record]] = []
        self._lock = AsyncLock()
        self._slots = AsyncSemaphore(max_connections)
        self._closed = False
        self._created = 0

    @classmethod
    def from_url(cls: type[P], url: str, **overrides: Any) -> P:
        """A pool for the server an SMTP URL names (see the client's ``from_url``).

        ``overrides`` are pool or client keyword arguments; ``None`` keeps the URL's value.
        """
        return cls(**url_options(url, overrides))

    @classmethod
    def from_account(
        cls: type[P], account: str | None = None, *, config: str | None = None, **overrides: Any
    ) -> P:
        """A pool for an account of the config file (see the client's ``from_account``)."""
        return cls(**account_options(account, config, overrides))

    # -- connections -----------------------------------------------------------------------

    async def _acquire(self) -> tuple[AsyncClient, Record]:
        await self._slots.acquire()
        try:
            while True:
                with self._lock:
                    if self._closed:
                        raise RuntimeError("the pool is closed")
                    entry = self._idle.pop() if self._idle else None
                if entry is None:
                    client = self._factory()
                    await client.connect()
                    now = time.monotonic()
                    with self._lock:
                        self._created += 1
                    return client, Record(now, now)
                client, record = entry
                action = self.policy.action(record, time.monotonic())
                if action is Action.REUSE and client.connected:
                    return entry
                if action is Action.CHECK and client.connected:
                    try:
                        await client.noop()
                        return entry
                    except (SMTPError, OSError):
                        pass
                if client.connected:
                    await client.quit()
                else:
                    client.close()
        except BaseException:
            self._slots.release()
            raise

    def _release(self, client: AsyncClient, record: Record) -> None:
        record.last_used = time.monotonic()
        with self._lock:
            keep = client.connected and not self._closed
            if keep:
                self._idle.append((client, record))
        if not keep:
            client.close()
        self._slots.release()

    async def _wait_rate(self, n: int) -> None:
        if self._limiter is None:
            return
        with self._lock:
            delay = self._limiter.reserve(time.monotonic(), n)
        if delay > 0:
            await asleep(delay)

    # -- sending ---------------------------------------------------------------------------

    async def send(self, message: object, **options: Any) -> SendResult:
        """Send one message on a pooled connection (options as for the client's ``send``)."""
        for attempt in (1, 2):
            await self._wait_rate(1)
            client, record = await self._acquire()
            try:
                result = await client.send(message, **options)
                record.messages += 1
                return result
            except SMTPError as exc:
                if attempt == 2 or not may_resend_elsewhere(exc) or not content_rereadable(message):
                    raise
            finally:
                self._release(client, record)
        raise AssertionError("unreachable")  # pragma: no cover

    async def send_many(self, messages: Iterable[object]) -> list[Outcome]:
        """Send every message over up to ``max_connections`` connections; outcomes in order.

        Items are messages or ``(message, sender, recipients)`` tuples, as for
        the client's ``send_many``.
        """
        return [outcome async for outcome in self.send_many_iter(messages)]

    async def send_many_iter(self, messages: Iterable[object]) -> AsyncIterator[Outcome]:
        """:meth:`send_many`, handing out each outcome once it and every earlier one are known."""
        chunks = self._chunks(messages)
        finished: AsyncQueue[list[tuple[int, Outcome]] | BaseException | None] = AsyncQueue()
        stopped = False

        async def work() -> None:
            try:
                while not stopped:
                    with self._lock:
                        chunk = next(chunks, None)
                    if chunk is None:
                        break
                    finished.put_nowait(await self._run_chunk(chunk, retry=True))
            except BaseException as exc:  # handed to the consumer, who raises it
                finished.put_nowait(exc)
            finally:
                finished.put_nowait(None)

        workers = AsyncWorkers(work, self.max_connections)
        try:
            outcomes: dict[int, Outcome] = {}
            position = 0
            running = self.max_connections
            while running:
                done = await finished.get()
                if done is None:
                    running -= 1
                    continue
                if isinstance(done, BaseException):
                    raise done
                outcomes.update(done)
                while position in outcomes:
                    yield outcomes.pop(position)
                    position += 1
            if outcomes:
                raise RuntimeError(f"no outcome for message {position}")  # a bug
        finally:
            stopped = True
            workers.stop()

    @staticmethod
    def _chunks(messages: Iterable[object]) -> Iterator[Chunk]:
        items = enumerate(messages)
        while chunk := list(itertools.islice(items, MESSAGES_PER_TAKE)):
            yield chunk

    async def _run_chunk(self, chunk: Chunk, *, retry: bool) -> list[tuple[int, Outcome]]:
        """Send ``chunk`` on one connection; what failed with the connection goes once more."""
        await self._wait_rate(len(chunk))
        try:
            client, record = await self._acquire()
        except (SMTPError, OSError) as exc:
            return [(index, exc) for index, _ in chunk]
        try:
            results = await client.send_many([item for _, item in chunk], window=self.window)
            record.messages += len(chunk)
        finally:
            self._release(client, record)
        done: list[tuple[int, Outcome]] = []
        again: Chunk = []
        for (index, item), outcome in zip(chunk, results, strict=True):
            if retry and may_resend_elsewhere(outcome) and content_rereadable(item):
                again.append((index, item))
            else:
                done.append((index, outcome))
        if again:
            done.extend(await self._run_chunk(again, retry=False))
        return done

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def connections_opened(self) -> int:
        """How many connections this pool has opened so far."""
        return self._created

    async def close(self) -> None:
        """QUIT and close every idle connection; the pool cannot be used after."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for client, _ in idle:
            await client.quit()

    async def __aenter__(self) -> AsyncPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
