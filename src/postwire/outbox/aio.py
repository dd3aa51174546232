"""The outbox for asyncio code: the same calls, awaited, never blocking the event loop.

Neither SQLite (the standard library's driver) nor the outbox's group commit is
asynchronous, and every call is one short transaction: so :class:`AsyncOutbox` runs the
synchronous :class:`~postwire.outbox.Outbox` in one thread of its own (calls are serialized
there, in order) and awaits it.  One code path serves both faces and both databases; the
event loop only waits on a future.  A worker (:meth:`AsyncOutbox.work`) runs in another
thread, and cancelling the task stops it cleanly.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import datetime as dt
import threading
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from .outbox import Outbox
from .records import Entry
from .states import State
from .storage import RelayStatus

__all__ = ["AsyncOutbox"]

T = TypeVar("T")


async def _read_async(message: object) -> object:
    """An async iterable's bytes, read on the loop (the thread cannot iterate it)."""
    if hasattr(message, "__aiter__"):
        chunks = [bytes(chunk) async for chunk in message]
        return b"".join(chunks)
    return message


class AsyncOutbox:
    """`Outbox` for asyncio: the same arguments, and the same methods, awaited.

    The database is opened in the outbox's thread on first use, so even the
    connection does not block the loop.
    """

    def __init__(self, url: str | None = None, *, domain: str | None = None) -> None:
        self.url = url
        self._domain = domain
        self._outbox: Outbox | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="postwire-outbox"
        )

    def _sync(self) -> Outbox:
        if self._outbox is None:
            self._outbox = Outbox(self.url, domain=self._domain)
        return self._outbox

    async def _run(self, fn: Callable[[Outbox], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._sync()))

    async def put(
        self,
        message: object,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        key: str | None = None,
        priority: int = 0,
        not_before: dt.datetime | float | None = None,
        route: str | None = None,
    ) -> Entry:
        """`Outbox.put`; ``message`` may also be an async iterable of bytes."""
        message = await _read_async(message)
        return await self._run(
            lambda o: o.put(
                message,
                sender=sender,
                recipients=recipients,
                key=key,
                priority=priority,
                not_before=not_before,
                route=route,
            )
        )

    async def put_many(
        self,
        items: Iterable[object] | AsyncIterable[object],
        *,
        priority: int = 0,
        not_before: dt.datetime | float | None = None,
        route: str | None = None,
    ) -> list[Entry]:
        """`Outbox.put_many` (one transaction); ``items`` may be an async iterable."""
        listed = (
            [item async for item in items]
            if isinstance(items, AsyncIterable)
            else builtins.list(items)
        )
        ready: list[object] = []
        for item in listed:
            if isinstance(item, tuple) and len(item) == 3:
                ready.append((await _read_async(item[0]), item[1], item[2]))
            else:
                ready.append(item)
        return await self._run(
            lambda o: o.put_many(ready, priority=priority, not_before=not_before, route=route)
        )

    async def get(self, entry_id: int) -> Entry:
        """`Outbox.get`."""
        return await self._run(lambda o: o.get(entry_id))

    async def message(self, entry_id: int) -> bytes:
        """`Outbox.message`."""
        return await self._run(lambda o: o.message(entry_id))

    async def counts(self) -> dict[State, int]:
        """`Outbox.counts`."""
        return await self._run(lambda o: o.counts())

    async def list(
        self, state: State | str | None = None, *, limit: int = 100, offset: int = 0
    ) -> builtins.list[Entry]:
        """`Outbox.list`."""
        return await self._run(lambda o: o.list(state, limit=limit, offset=offset))

    async def oldest_age(self) -> float | None:
        """`Outbox.oldest_age`."""
        return await self._run(lambda o: o.oldest_age())

    async def relays(self) -> builtins.list[RelayStatus]:
        """`Outbox.relays`."""
        return await self._run(lambda o: o.relays())

    async def retry(self, entry_id: int) -> Entry:
        """`Outbox.retry`."""
        return await self._run(lambda o: o.retry(entry_id))

    async def hold(self, entry_id: int) -> Entry:
        """`Outbox.hold`."""
        return await self._run(lambda o: o.hold(entry_id))

    async def release(self, entry_id: int) -> Entry:
        """`Outbox.release`."""
        return await self._run(lambda o: o.release(entry_id))

    async def cancel(self, entry_id: int) -> Entry:
        """`Outbox.cancel`."""
        return await self._run(lambda o: o.cancel(entry_id))

    async def purge(
        self, older_than: float | dt.timedelta, *, states: Iterable[State | str] | None = None
    ) -> int:
        """`Outbox.purge`."""
        return await self._run(lambda o: o.purge(older_than, states=states))

    async def work(self, **options: Any) -> dict[str, int]:
        """`Outbox.work` (the same keyword arguments) in a thread of its own, with a
        database connection of its own; cancelling the task stops the worker (the
        batches being sent finish first)."""
        stop = threading.Event()
        url = self.url
        domain = self._domain

        def run() -> dict[str, int]:
            with Outbox(url, domain=domain) as outbox:
                return outbox.work(stop=stop, **options)

        future = asyncio.get_running_loop().run_in_executor(None, run)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.wait([future])
            raise

    async def close(self) -> None:
        """Close the database connection and the outbox's thread."""
        if self._outbox is not None:
            outbox = self._outbox
            await self._run(lambda o: outbox.close())
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> AsyncOutbox:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
