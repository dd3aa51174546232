"""Which records go in the next message, and when: the handler's decisions, without threads.

:class:`Batcher` joins the record queue (:mod:`.records`), the rate limit and the back-off
(:mod:`.pacing`).  The sending thread asks it :meth:`Batcher.due` (how long to sleep),
:meth:`Batcher.take` (the next message's records) and tells it how the send went; all with
the clock passed in, so every rule is tested on values.

The rules:

- a message waits ``delay`` seconds after its first record, so a burst goes as one message;
  it goes at once when ``max_records`` or ``max_chars`` are reached, or when a flush asks;
- the rate limit holds messages back (their records wait in the queue, bounded);
- after a failure the next attempt waits (doubling back-off); a flush tries once at once;
- at close the delay and the back-off no longer apply; if the rate limit holds, one last
  message goes anyway, with what fits, and the records that do not fit are dropped and
  counted in it (the last records before an exit are the ones worth reading).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .pacing import Backoff, RateWindow
from .records import DROP_POLICIES, DropPolicy, Entry, RecordQueue

__all__ = ["MAX_RETRY_DELAY", "Batch", "BatchSettings", "Batcher"]

#: The back-off never grows past ten minutes (unless ``retry_delay`` itself is longer).
MAX_RETRY_DELAY = 600.0


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """The limits of batching, rate and queue (the handler's keyword arguments of those names).

    Attributes:
        delay: seconds a message waits after its first record for more to join it.
        max_records: records in one message at most.
        max_chars: characters of formatted records in one message at most (a longer
            record is cut to this).
        rate_limit: messages in any ``rate_period`` seconds at most; None: no limit.
        rate_period: the period of the rate limit, in seconds.
        queue_records: records waiting at most; beyond, ``drop`` decides which go.
        queue_chars: characters of records waiting at most.
        drop: ``"newest"`` (keep the first records of a storm) or ``"oldest"``.
        retry_delay: seconds before the first retry after a failure; doubled after each
            further failure, up to :data:`MAX_RETRY_DELAY`.
    """

    delay: float = 5.0
    max_records: int = 500
    max_chars: int = 500_000
    rate_limit: int | None = 5
    rate_period: float = 60.0
    queue_records: int = 10_000
    queue_chars: int = 5_000_000
    drop: DropPolicy = "newest"
    retry_delay: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_records", "max_chars", "queue_records", "queue_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        if not 0 <= self.delay < math.inf:
            raise ValueError(f"batch_delay must be 0 or more seconds, not {self.delay!r}")
        if self.drop not in DROP_POLICIES:
            raise ValueError(f"drop must be one of {', '.join(DROP_POLICIES)}, not {self.drop!r}")
        RateWindow(self.rate_limit, self.rate_period)  # the same checks as when in use
        Backoff(self.retry_delay, max(self.retry_delay, MAX_RETRY_DELAY))


@dataclass(frozen=True, slots=True)
class Batch:
    """The records of one message.

    ``dropped`` counts the records lost since the previous message (queue full, a send that
    failed for good, or, in a ``final`` message, what did not fit): the message says so.
    """

    entries: tuple[Entry, ...]
    dropped: int = 0
    final: bool = False

    @property
    def texts(self) -> list[str]:
        return [entry.text for entry in self.entries]


class Batcher:
    """The queue and the clocks of one handler; not thread-safe (the caller holds a lock)."""

    __slots__ = ("_backoff", "_rate", "queue", "settings")

    def __init__(self, settings: BatchSettings) -> None:
        self.settings = settings
        # A record may be at most one message long, and must fit the queue.
        self.queue = RecordQueue(
            settings.queue_records,
            settings.queue_chars,
            settings.drop,
            record_chars=min(settings.max_chars, settings.queue_chars),
        )
        self._rate = RateWindow(settings.rate_limit, settings.rate_period)
        self._backoff = Backoff(settings.retry_delay, max(settings.retry_delay, MAX_RETRY_DELAY))

    def add(self, text: str, now: float) -> bool:
        """Queue a formatted record; returns whether the sending thread should look again.

        Only the first record of a batch and the one that fills it change when the next
        message is due: a storm does not wake the thread at every record.
        """
        was_empty = not self.queue
        self.queue.push(text, now)
        return was_empty or self._full()

    def _full(self) -> bool:
        s = self.settings
        return len(self.queue) >= s.max_records or self.queue.chars >= s.max_chars

    def due(self, now: float, *, flush_upto: int = 0, closing: bool = False) -> float | None:
        """Seconds until the next message should go (0: now), or None when nothing waits.

        ``flush_upto``: records older than this sequence number are wanted now (no delay,
        no back-off; the rate limit still holds).  ``closing``: nothing waits any more.
        """
        first = self.queue.first
        if first is None:
            return None
        if closing:
            return 0.0
        if first.seq < flush_upto:
            start = now
        else:
            start = now if self._full() else first.arrived + self.settings.delay
            start = max(start, self._backoff.until)
        start = max(start, now + self._rate.wait(now))
        return max(0.0, start - now)

    def rate_blocked(self, now: float) -> bool:
        """Whether the rate limit holds the next message back at ``now``."""
        return self._rate.wait(now) > 0

    def take(self, now: float, *, closing: bool = False) -> Batch:
        """The next message's records (call when :meth:`due` said 0).

        Closing while the rate limit holds: the last message, past the limit; the records
        that do not fit are dropped and counted in it.
        """
        final = closing and self.rate_blocked(now)
        entries = self.queue.pop_batch(self.settings.max_records, self.settings.max_chars)
        if final:
            self.queue.discard()
        return Batch(tuple(entries), self.queue.take_unreported(), final)

    def delivered(self, batch: Batch, now: float) -> None:
        """The message went (``now``: when its last reply came)."""
        self._rate.record(now)
        self._backoff.succeeded()

    def failed(self, batch: Batch, now: float, *, retry: bool) -> float:
        """The message did not go; returns the back-off before the next attempt.

        ``retry``: its records go back to the front of the queue for another try (a final
        message is never retried); else they are dropped.  Either way the drops it was
        to report are reported by the next message.
        """
        self.queue.unreported += batch.dropped
        if retry and not batch.final:
            self.queue.give_back(batch.entries)
        else:
            self.queue.count_dropped(len(batch.entries))
        return self._backoff.failed(now)
