"""Per-relay limits shared by every worker: concurrency with slow start, and a message rate.

The numbers live in the database (table ``outbox_relays``) so that they hold across
processes and machines; this module holds the pure rules the storage backends apply in
one short transaction.

- **Concurrency** is counted, never trusted: each open connection holds a *slot*, a row
  with a lease (``outbox_slots``) that the worker's heartbeat extends, so a worker that
  crashed gives its slots back when their leases run out, with nobody to correct a
  counter.  The number of slots allowed, the *window*, follows Postfix's queue manager:
  it starts at ``initial``, grows by one after each connection that delivered, up to
  ``max_connections``, and shrinks by one after a connection that failed; a failure at a
  window of one marks the relay *dead* for ``dead_time`` seconds (no new connections, so
  its messages wait instead of failing one by one).
- **Rate** is counted at the commit point: each message's final "." takes a row of
  ``outbox_rate`` stamped in the same transaction as its "about to be sent" mark, and a
  mark is refused while ``rate`` messages were stamped in the last ``1 + guard`` seconds.
  The guard covers the time from the stamp to the "." reaching the relay, so that the relay
  never sees more than ``rate`` messages in any one-second window; a worker whose commit
  took most of the guard (a slow disk sync) does not send that "." at all, so the guard
  holds however slow the database was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RelayLimits", "grow", "rate_capacity", "shrink"]


@dataclass(frozen=True)
class RelayLimits:
    """The limits of one relay (`host:port`), as a worker asks for them.

    They are stored in the database when a worker first uses the relay and hold for
    every worker: the last worker started with other values replaces them, so start
    all workers with the same ones.

    Attributes:
        max_connections: open connections to the relay, over every worker.
        initial: the window a relay starts with (slow start: one more after each
            connection that delivered, one less after each that failed).
        rate: messages per second over every worker, or None.
        guard: seconds the rate's counting window exceeds one second by, to
            cover the time from the database stamp to the "." reaching the relay.
        dead_time: seconds a relay whose connection failed at a window of one is
            left alone (its messages wait rather than fail one by one).
    """

    max_connections: int = 10
    initial: int = 5
    rate: float | None = None
    guard: float = 0.1
    dead_time: float = 60.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.initial < 1:
            raise ValueError("initial must be at least 1")
        if self.rate is not None and not self.rate > 0:
            raise ValueError("rate must be positive (messages per second) or None")
        if self.guard < 0 or self.dead_time < 0:
            raise ValueError("guard and dead_time must not be negative")

    @property
    def start_window(self) -> int:
        """The window a new relay starts with: `initial`, at most `max_connections`."""
        return min(self.initial, self.max_connections)


def grow(window: int, maximum: int) -> int:
    """Slow start: one more connection after one that delivered."""
    return min(window + 1, maximum)


def shrink(window: int) -> tuple[int, bool]:
    """After a failed connection: the new window, and whether the relay is now dead."""
    return max(1, window - 1), window <= 1


def rate_capacity(rate: float, guard: float) -> tuple[int, float]:
    """How many messages may be stamped per window, and the window's length in seconds.

    ``rate`` messages per second: at most ``floor(rate)`` in ``1 + guard`` seconds; a
    rate under one gives one message per ``1 / rate + guard`` seconds.
    """
    if rate >= 1:
        return math.floor(rate), 1.0 + guard
    return 1, 1.0 / rate + guard
