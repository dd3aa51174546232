"""Timeouts for each step of a session, and the deadline of a whole send.

RFC 5321 §4.5.3.2 recommends generous per-step limits (5 minutes for the
greeting and MAIL, 10 minutes for the reply to the final "."): the point is
that every wait has *some* limit.  The wait for the final reply grows with
the message size, because a server may scan a large message before it answers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .effects import Wait

__all__ = ["Timeouts"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed for each kind of wait; ``None`` means no limit.

    Attributes:
        connect: the TCP connection (and an implicit-TLS handshake).
        greeting: the server's 220 greeting.
        command: the reply to any command, and a STARTTLS handshake.
        data: each write of message content.
        data_end: the reply to the end of the data, plus ``data_end_per_mib``
            seconds for every MiB of the message.
        total: the deadline of one whole send (``Client.send``), or ``None``.
    """

    connect: float | None = 30.0
    greeting: float | None = 60.0
    command: float | None = 60.0
    data: float | None = 60.0
    data_end: float | None = 60.0
    data_end_per_mib: float = 2.0
    total: float | None = None

    @classmethod
    def uniform(cls, seconds: float | None) -> Timeouts:
        """The same limit for every step (the ``timeout=`` argument of the clients)."""
        if seconds is not None and seconds <= 0:
            raise ValueError(f"timeout must be positive or None, not {seconds!r}")
        return cls(seconds, seconds, seconds, seconds, seconds)

    def for_wait(self, wait: Wait, size: int = 0) -> float | None:
        if wait is Wait.GREETING:
            return self.greeting
        if wait is Wait.DATA_END:
            if self.data_end is None:
                return None
            return self.data_end + self.data_end_per_mib * (size / (1 << 20))
        return self.command

    def with_total(self, total: float | None) -> Timeouts:
        return replace(self, total=total)
