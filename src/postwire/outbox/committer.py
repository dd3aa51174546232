"""A worker's one writer: every database write of the process, committed in groups.

A worker has many connections, and each message needs a write right before its final "."
(the commit-point mark) and one after its reply.  Committed one by one, every write would
wait for its own disk sync (SQLite ``synchronous=FULL``) or round trip (PostgreSQL).  The
committer thread takes whatever requests have arrived, runs them all in one transaction and
commits once: a group commit, so N connections waiting for their marks cost one sync.

A request that waits (claim, mark, slot, feedback) gets its value or the error; a result
(``finish``) does not wait, and when the database fails it is kept and written again until
the database is back or its lease is found gone: a reply the relay gave is never dropped
while the process lives.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from .._core.errors import StorageError
from .storage import FinishItem, MarkItem, Storage
from .storage.leases import MarkResult

__all__ = ["Committer", "MarkRequest", "Request"]

log = logging.getLogger("postwire.outbox")
T = TypeVar("T")

Finishes = list[FinishItem]
#: Seconds between two tries when the database fails.
RETRY_DELAY = 0.2


class Request(Generic[T]):
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[Storage], T]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class MarkRequest:
    """Marks waiting for their group: all the group's marks are written together."""

    __slots__ = ("done", "error", "items", "results")

    def __init__(self, items: Sequence[MarkItem]) -> None:
        self.items = list(items)
        self.done = threading.Event()
        self.results: list[MarkResult] = []
        self.error: BaseException | None = None


class Committer:
    """Runs storage operations for many threads, grouped into few transactions."""

    def __init__(
        self,
        storage: Storage,
        owner: str,
        *,
        on_finished: Callable[[Sequence[FinishItem], Sequence[bool]], None] | None = None,
    ) -> None:
        self.storage = storage
        self.owner = owner
        self._on_finished = on_finished
        self._queue: queue.SimpleQueue[Request[Any] | MarkRequest | list[FinishItem] | None] = (
            queue.SimpleQueue()
        )
        self._unwritten: list[FinishItem] = []
        self._stopping = False
        self._idle = threading.Condition()
        self._outstanding = 0
        #: Transactions committed, and requests in them (the group commit's effect).
        self.transactions = 0
        self.requests = 0
        self._thread = threading.Thread(target=self._run, name="outbox-commit", daemon=True)
        self._thread.start()

    def now(self) -> float:
        """The database's clock (safe from any thread)."""
        return self.storage.now()

    def call(self, fn: Callable[[Storage], T]) -> T:
        """Run ``fn(storage)`` in the next group; returns its value or raises its error."""
        return self.result(self.call_soon(fn))

    def call_soon(self, fn: Callable[[Storage], T]) -> Request[T]:
        """Run ``fn(storage)`` in the next group; :meth:`result` waits for it."""
        request: Request[T] = Request(fn)
        self._queue.put(request)
        return request

    @staticmethod
    def result(request: Request[T]) -> T:
        """The value of a :meth:`call_soon` request (or its error), once committed."""
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]

    def mark(self, items: Sequence[MarkItem]) -> list[MarkResult]:
        """Record commit points (see :meth:`~.storage.leases.LeaseOps.mark`); waits for them."""
        return self.marked(self.mark_soon(items))

    def mark_soon(self, items: Sequence[MarkItem]) -> MarkRequest:
        """Ask for commit points to be recorded; :meth:`marked` waits for them."""
        request = MarkRequest(items)
        self._queue.put(request)
        return request

    @staticmethod
    def marked(request: MarkRequest) -> list[MarkResult]:
        """The results of a :meth:`mark_soon` request, once committed (or its error)."""
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.results

    def finish(self, items: Sequence[FinishItem]) -> None:
        """Write these results soon (fenced by their leases); does not wait."""
        if items:
            with self._idle:
                self._outstanding += len(items)
            self._queue.put(list(items))

    def flush(self, timeout: float) -> bool:
        """Wait until every result handed to :meth:`finish` is written (or fenced out)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is left (within ``timeout``), then stop the thread."""
        self.flush(timeout)
        self._stopping = True
        self._queue.put(None)
        self._thread.join(timeout)

    # -- the thread --------------------------------------------------------------------------

    def _take(self) -> tuple[list[Request[Any] | MarkRequest], list[FinishItem]]:
        """Wait for the first request, then take every one that is there."""
        requests: list[Request[Any] | MarkRequest] = []
        finishes: list[FinishItem] = []
        timeout = RETRY_DELAY if self._unwritten else None
        try:
            first = self._queue.get(timeout=timeout)
        except queue.Empty:
            return requests, finishes
        item: Request[Any] | MarkRequest | list[FinishItem] | None = first
        while True:
            if isinstance(item, list):
                finishes.extend(item)
            elif item is not None:
                requests.append(item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return requests, finishes

    def _run(self) -> None:
        while True:
            requests, finishes = self._take()
            finishes = self._unwritten + finishes
            self._unwritten = []
            if requests or finishes:
                self._group(requests, finishes)
            # Closing: leave once everything is written (with a database that does not
            # answer, close() stops waiting; the results go only with the process).
            if self._stopping and not self._unwritten and self._queue.empty():
                return

    def _group(self, requests: list[Request[Any] | MarkRequest], finishes: Finishes) -> None:
        for attempt in range(3):
            try:
                self._once(requests, finishes)
                return
            except StorageError as exc:
                # A deadlock lost to another worker (PostgreSQL aborted this transaction):
                # nothing of it was committed, so it simply runs again.
                if attempt == 2 or not self.storage.retryable(exc):
                    self._failed(requests, finishes, exc)
                    return
                for request in requests:
                    request.error = None

    def _failed(
        self, requests: list[Request[Any] | MarkRequest], finishes: Finishes, exc: StorageError
    ) -> None:
        log.warning("outbox: database error, %d results kept for later: %s", len(finishes), exc)
        self._unwritten = finishes
        for request in requests:
            request.error = exc
            request.done.set()
        threading.Event().wait(RETRY_DELAY)

    def _once(self, requests: list[Request[Any] | MarkRequest], finishes: Finishes) -> None:
        """One group in one transaction; raises StorageError (nothing committed) on failure.

        Results first, then the marks (all in one statement), then the other requests
        in the order they came.
        """
        written: list[bool] = []
        marks = [r for r in requests if isinstance(r, MarkRequest)]
        with self.storage.write():
            if finishes:
                written = self.storage.finish(finishes, self.owner)
            if marks:
                results = self.storage.mark([i for m in marks for i in m.items], self.owner)
                start = 0
                for mark in marks:
                    mark.results = results[start : start + len(mark.items)]
                    start += len(mark.items)
            for request in requests:
                if isinstance(request, MarkRequest):
                    continue
                try:
                    request.result = request.fn(self.storage)
                except StorageError:
                    raise
                except Exception as exc:  # this request's own failure
                    request.error = exc
        self.transactions += 1
        self.requests += len(requests) + len(finishes)
        for request in requests:
            request.done.set()
        if finishes:
            lost = [item for item, ok in zip(finishes, written, strict=True) if not ok]
            for item in lost:
                log.info("outbox: entry %d: lease lost, result not written", item.id)
            if self._on_finished is not None:
                self._on_finished(finishes, written)
            with self._idle:
                self._outstanding -= len(finishes)
                self._idle.notify_all()
