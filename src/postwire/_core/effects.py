"""The effects a procedure yields, and what a driver does for each.

A procedure is a generator that yields *effects* and receives, for a
:class:`Recv`, the paired :class:`~postwire._core.reply.Reply`.  It decides
everything the protocol decides; a driver (sync or asyncio) only performs the
effects, so the same logic, tested once on bytes, runs under both clients.

Drivers buffer :class:`Send` bytes and write them when a :class:`Recv` (or
another effect) comes, which is what makes a pipelined group (RFC 2920) one
write: a procedure that yields several sends before a receive pipelines them.
"""

from __future__ import annotations

import enum
from collections.abc import Generator
from dataclasses import dataclass

from .body import BodyEncoder
from .reply import Reply

__all__ = [
    "Effect",
    "Fill",
    "Recv",
    "Send",
    "SendBody",
    "UpgradeTLS",
    "Wait",
    "recv",
]


class Wait(enum.Enum):
    """Which timeout applies to a :class:`Recv`."""

    GREETING = "greeting"
    COMMAND = "command"
    #: The reply to the end of the data, which may take long for big messages
    #: (RFC 5321 §4.5.3.2.6 suggests 10 minutes).
    DATA_END = "data end"


@dataclass(frozen=True, slots=True)
class Send:
    """Write ``data``; ``secret`` marks credentials that logs and transcripts must hide."""

    data: bytes
    secret: bool = False


@dataclass(frozen=True, slots=True)
class Recv:
    wait: Wait = Wait.COMMAND


@dataclass(frozen=True, slots=True)
class Fill:
    """Wait until ``count`` replies have arrived, or no more can (error, closed).

    The procedure then takes them with ``conn.next_reply()``, which raises
    the right error if one is missing.  One Fill for a pipelined group costs
    one pass through the driver instead of one per reply.
    """

    count: int
    wait: Wait = Wait.COMMAND


@dataclass(frozen=True, slots=True)
class UpgradeTLS:
    """Do the TLS handshake on the current connection now (after STARTTLS's 220)."""


@dataclass(frozen=True, slots=True)
class SendBody:
    """Stream the message content through ``encoder``, then call its ``finish``.

    The driver feeds every chunk of the message source to ``encoder.feed`` and
    writes the result, runs the end-of-message hook, and only then writes
    ``encoder.finish()``: until then the message cannot be delivered.
    """

    encoder: BodyEncoder
    #: The message content, opaque to the core: bytes, a file, an (async) iterable.
    content: object = None
    #: In a batch, the message's index (``send_batch``'s items), so a driver can run a
    #: per-message end-of-message hook; None for a single transaction.
    index: int | None = None


Effect = Send | Recv | Fill | UpgradeTLS | SendBody

#: Shared effect objects: the hot path allocates none per reply.
_RECV = {wait: Recv(wait) for wait in Wait}


def recv(wait: Wait = Wait.COMMAND) -> Generator[Effect, Reply | None, Reply]:
    """Await one reply (``reply = yield from recv()``)."""
    reply = yield _RECV[wait]
    if reply is None:  # pragma: no cover - a driver bug
        raise RuntimeError("driver resumed a Recv without a reply")
    return reply
