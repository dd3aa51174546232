"""The sending thread: the only place the handler waits, and it is not the application.

:class:`Worker` owns a :class:`~.batching.Batcher` behind one lock.  ``submit()`` (called by
``emit()``) queues a formatted record and, at most, wakes the thread; it never waits on
anything but that lock, which the thread holds only to decide, never while it sends.  The
thread sleeps until :meth:`Batcher.due <.batching.Batcher.due>` says a message should go,
sends it through the ``send`` callable outside the lock, and tells the batcher how it went.

``flush()`` and ``close()`` wait for the thread with a bound, so a server that is down or
hangs costs the application at most that bound, and only where it asked to wait.  The thread
is a daemon: a send stuck in a hung server never keeps the interpreter from exiting
(``logging.shutdown`` runs at exit, after non-daemon threads are joined, so the thread is
still there to flush).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from .batching import Batch, Batcher

__all__ = ["Worker"]

#: Sends a batch or raises.
Send = Callable[[Batch], None]
#: Told the first failure of each streak: the error, how many records, whether they are kept.
Report = Callable[[BaseException, int, bool], None]


class Worker:
    """A background thread that sends batches; counters are read without the lock."""

    def __init__(
        self,
        batcher: Batcher,
        send: Send,
        retryable: Callable[[BaseException], bool],
        report: Report,
        *,
        name: str,
    ) -> None:
        self._batcher = batcher
        self._send = send
        self._retryable = retryable
        self._report = report
        self._name = name
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the thread waits on it
        self._progress = threading.Condition(self._lock)  # flush() waits on it
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._flush_upto = 0
        self._closing = False
        self._inflight: Batch | None = None
        self._attempts = 0
        self._stuck_attempt = -1
        self._streak_reported = False
        self.messages_sent = 0
        self.records_sent = 0
        self.send_failures = 0

    # -- the application's side ------------------------------------------------------------

    @property
    def records_queued(self) -> int:
        return len(self._batcher.queue)

    @property
    def chars_queued(self) -> int:
        return self._batcher.queue.chars

    @property
    def records_dropped(self) -> int:
        return self._batcher.queue.dropped_total

    def owns_current_thread(self) -> bool:
        """Whether the caller is the sending thread (whose own log records are not mailed)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, text: str) -> None:
        """Queue a formatted record; starts the thread at the first one."""
        self._check_fork()
        with self._lock:
            if self._closing:
                self._batcher.queue.count_dropped(1)
                return
            wake = self._batcher.add(text, time.monotonic())
            if self._thread is None:
                # Started lazily: a handler that is configured but never used costs no thread.
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                thread.start()
                self._thread = thread
            elif wake:
                self._work.notify()

    def flush(self, timeout: float) -> bool:
        """Send what is queued now, without the batch delay; wait at most ``timeout`` seconds.

        Returns True when every record queued before the call has been sent (or dropped by
        the queue's policy) and no send failed meanwhile.  Returns False as soon as a send
        fails (a flush makes one attempt, whatever the back-off says) or the rate limit
        holds the next message back, since waiting would not help; and after ``timeout``.
        """
        self._check_fork()
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._batcher.queue.next_seq
            failures = self.send_failures
            self._flush_upto = max(self._flush_upto, target)
            self._work.notify()
            while not self._settled(target):
                now = time.monotonic()
                if self.send_failures != failures or self._thread is None:
                    return False
                if self._inflight is None and self._batcher.rate_blocked(now):
                    return False
                if now >= deadline:
                    if self._inflight is not None:
                        # close() need not wait again for the very same stuck send.
                        self._stuck_attempt = self._attempts
                    return False
                self._progress.wait(deadline - now)
            return self.send_failures == failures

    def close(self, timeout: float) -> int:
        """Stop taking records, send what is left, stop the thread; wait at most ``timeout``.

        Returns how many records were still unsent when the wait ended (0: all went, or
        were dropped by policy and counted).  The thread, a daemon, finishes a send in
        progress (bounded by the client's timeouts) and stops.
        """
        self._check_fork()
        with self._lock:
            if self._closing:
                return 0
            self._closing = True
            thread = self._thread
            stuck = self._inflight is not None and self._attempts == self._stuck_attempt
            self._work.notify()
        if thread is None:
            return 0
        thread.join(0.0 if stuck else timeout)
        if not thread.is_alive():
            return 0
        with self._lock:
            inflight = len(self._inflight.entries) if self._inflight is not None else 0
            return len(self._batcher.queue) + inflight

    def claim_report(self) -> bool:
        """Whether the current failure streak has not been reported yet (it is, from now)."""
        with self._lock:
            first = not self._streak_reported
            self._streak_reported = True
            return first

    # -- the thread ----------------------------------------------------------------------

    def _settled(self, seq: int) -> bool:
        inflight = self._inflight
        return self._batcher.queue.settled_below(seq) and (
            inflight is None or inflight.entries[0].seq >= seq
        )

    def _run(self) -> None:
        while True:
            with self._lock:
                batch = self._next_batch()
                if batch is None:
                    self._progress.notify_all()
                    return
                self._inflight = batch
                self._attempts += 1
            error: Exception | None = None
            try:
                self._send(batch)
            except Exception as exc:  # anything, or the thread dies and records pile up
                error = exc
            self._settle(batch, error)

    def _next_batch(self) -> Batch | None:
        """Wait (lock held) until a message is due; None when closing and nothing is left."""
        while True:
            now = time.monotonic()
            closing = self._closing
            wait = self._batcher.due(now, flush_upto=self._flush_upto, closing=closing)
            if wait is None:
                if closing:
                    return None
                self._work.wait()
            elif wait <= 0:
                return self._batcher.take(now, closing=closing)
            else:
                self._work.wait(wait)

    def _settle(self, batch: Batch, error: Exception | None) -> None:
        report = False
        retry = False
        with self._lock:
            now = time.monotonic()
            self._inflight = None
            if error is None:
                self._batcher.delivered(batch, now)
                self.messages_sent += 1
                self.records_sent += len(batch.entries)
                self._streak_reported = False
            else:
                retry = self._retryable(error) and not self._closing
                self._batcher.failed(batch, now, retry=retry)
                self.send_failures += 1
                # A flush gets one immediate attempt; after it the back-off holds again.
                self._flush_upto = 0
                if self._closing:
                    self._batcher.queue.discard()
                report = not self._streak_reported
                self._streak_reported = True
            self._progress.notify_all()
        if report and error is not None:
            # Outside the lock: reporting may write to a slow stderr.
            self._report(error, len(batch.entries), retry)

    def _check_fork(self) -> None:
        """In a child process (``os.fork``, a pre-forking server): start afresh.

        The thread was not copied, and the lock may have been copied held.  A fresh lock,
        no thread (the next record starts one), and an empty queue: the records queued
        before the fork are the parent's to send.
        """
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._thread = None
        self._inflight = None
        self._flush_upto = 0
        self._batcher.queue.clear()
