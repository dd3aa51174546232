"""Pure bookkeeping for connection pools: reuse policy and a shared rate limit.

The sync and asyncio pools differ in how they wait and lock; what they decide
is decided here, with the clock passed in, so it is tested without sleeping.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Action", "PoolPolicy", "RateLimiter", "Record"]


class Action(enum.Enum):
    REUSE = "reuse"
    #: Idle for a while: check with NOOP before trusting it.
    CHECK = "check"
    #: Too old, too idle or used enough: close it and open a new one.
    RETIRE = "retire"


@dataclass(slots=True)
class Record:
    """What a pool knows about one of its connections."""

    created: float
    last_used: float
    messages: int = 0


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """When a pooled connection may be reused.

    Attributes:
        max_messages: messages per connection before it is replaced (servers
            often limit this, e.g. Postfix's smtpd_client_message_rate_limit).
        idle_timeout: an idle connection older than this is closed (servers
            drop idle clients after a few minutes, RFC 5321 §4.5.3.2.7).
        check_after: an idle connection older than this is checked with NOOP.
        max_age: a connection older than this is replaced, or None.
    """

    max_messages: int = 100
    idle_timeout: float = 60.0
    check_after: float = 5.0
    max_age: float | None = None

    def __post_init__(self) -> None:
        if self.max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        if self.idle_timeout <= 0 or self.check_after < 0:
            raise ValueError("idle_timeout must be positive and check_after not negative")

    def action(self, record: Record, now: float) -> Action:
        idle = now - record.last_used
        if record.messages >= self.max_messages or idle >= self.idle_timeout:
            return Action.RETIRE
        if self.max_age is not None and now - record.created >= self.max_age:
            return Action.RETIRE
        if idle >= self.check_after:
            return Action.CHECK
        return Action.REUSE


class RateLimiter:
    """A token bucket shared by every connection of a pool.

    ``reserve(now, n)`` books ``n`` messages and returns how long the caller
    must wait before sending them, so a rate is enforced *before* sending,
    across all connections (the nodemailer#768 failure mode).
    """

    __slots__ = ("_available", "_stamp", "burst", "rate")

    def __init__(self, rate: float, burst: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive (messages per second)")
        self.rate = rate
        self.burst = float(burst if burst is not None else max(1, int(rate)))
        self._available = self.burst
        self._stamp: float | None = None

    def reserve(self, now: float, n: int = 1) -> float:
        if self._stamp is None:
            self._stamp = now
        self._available = min(self.burst, self._available + (now - self._stamp) * self.rate)
        self._stamp = now
        self._available -= n
        if self._available >= 0:
            return 0.0
        return -self._available / self.rate
