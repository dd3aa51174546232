"""When the next message may go: the rate limit and the back-off after failures.

Pure, with the clock passed in.  The rate limit is a sliding window rather than the token
bucket of :mod:`postwire._core.pooling`: a bucket lets a full burst through at the end of one
period and another at the start of the next, so twice the limit could land in one period;
the window guarantees "at most ``limit`` messages in *any* ``period`` seconds", which is what
someone reading an inbox of alerts means by a rate limit.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["Backoff", "RateWindow"]


class RateWindow:
    """At most ``limit`` events in any ``period`` seconds (``limit=None``: no limit).

    The caller records when each event *finished* (:meth:`record`) and asks before the next
    one starts (:meth:`wait`): since an event starts at least ``period`` after the one
    ``limit`` events before it finished, any observer of the events (the mail server) sees no
    more than ``limit`` of them in a period, however long each one took.
    """

    __slots__ = ("_times", "limit", "period")

    def __init__(self, limit: int | None, period: float) -> None:
        if limit is not None and (isinstance(limit, bool) or limit < 1):
            raise ValueError(f"rate_limit must be a positive number of messages, not {limit!r}")
        if not period > 0 or math.isinf(period):
            raise ValueError(f"rate_period must be a positive number of seconds, not {period!r}")
        self.limit = limit
        self.period = period
        self._times: deque[float] = deque(maxlen=limit or 1)

    def wait(self, now: float) -> float:
        """Seconds until the next event may start (0 when it may start now)."""
        if self.limit is None or len(self._times) < self.limit:
            return 0.0
        return max(0.0, self._times[0] + self.period - now)

    def record(self, now: float) -> None:
        """An event finished at ``now``."""
        if self.limit is not None:
            self._times.append(now)


class Backoff:
    """After a failure, wait ``first`` seconds; double after each further one, up to ``cap``."""

    __slots__ = ("_next", "cap", "first", "until")

    def __init__(self, first: float, cap: float) -> None:
        if not 0 <= first <= cap or math.isinf(cap):
            raise ValueError(f"retry_delay must be from 0 to {cap} seconds, not {first!r}")
        self.first = first
        self.cap = cap
        self._next = first
        #: No attempt before this time (minus infinity: none pending).
        self.until = -math.inf

    def failed(self, now: float) -> float:
        """A failure at ``now``: returns the delay before the next attempt."""
        delay = self._next
        self.until = now + delay
        self._next = min(self.cap, max(delay * 2, self.first))
        return delay

    def succeeded(self) -> None:
        """A success: the next failure starts again from ``first``."""
        self._next = self.first
        self.until = -math.inf
