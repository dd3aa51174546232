"""What the outbox tells about an entry: the entry, each recipient, each attempt.

Values only (frozen dataclasses); times are aware UTC datetimes.  The storage
backends build them, :meth:`Outbox.get <postwire.outbox.Outbox.get>` returns
them, and ``postwire outbox show`` prints them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .._core.reply import Reply, parse_enhanced_status
from .states import RecipientState, State

__all__ = ["Attempt", "Entry", "Recipient", "from_epoch", "reply_from", "to_epoch"]

_UTC = dt.timezone.utc


def from_epoch(value: float | None) -> dt.datetime | None:
    """An aware UTC datetime from epoch seconds (None stays None)."""
    return None if value is None else dt.datetime.fromtimestamp(value, _UTC)


def to_epoch(value: dt.datetime | float | int | None) -> float | None:
    """Epoch seconds from a datetime (a naive one is taken as local time) or a number."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)


def reply_from(code: int | None, text: str | None) -> Reply | None:
    """A stored reply (code and text lines) as a :class:`Reply` again."""
    if code is None:
        return None
    lines = tuple((text or "").split("\n"))
    return Reply(code, lines, parse_enhanced_status(code, lines[0]))


@dataclass(frozen=True, slots=True)
class Recipient:
    """One recipient of an entry, its own state and the reply that decided it."""

    address: str
    state: RecipientState
    #: The server's reply to this recipient (RCPT, or the end of data), when there was one.
    reply: Reply | None = None
    #: What went wrong when no reply decided (a dropped connection, a timeout...).
    error: str = ""
    #: When it will be tried again (deferred ones), if it will.
    next_attempt_at: dt.datetime | None = None
    #: How many times it was left possibly delivered (each may be one duplicate).
    uncertain: int = 0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt of an entry: one lease, at most one SMTP transaction."""

    #: The entry's claim counter for this attempt (1 for the first).
    number: int
    worker: str
    relay: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    #: How far it went: a protocol step, "end of data" once the final "." went out,
    #: "lease" when the worker vanished and the reaper ended it.
    phase: str
    #: What it decided: delivered, deferred, bounced, uncertain, released, expired...
    outcome: str
    reply: Reply | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    """One message in the outbox, as it was when read.

    ``recipients`` and ``history`` (the attempts, oldest first) are filled by
    :meth:`~postwire.outbox.Outbox.get`; ``list`` leaves ``history`` empty.
    """

    id: int
    key: str
    message_id: str | None
    state: State
    sender: str
    route: str | None
    priority: int
    size: int
    created_at: dt.datetime
    updated_at: dt.datetime
    #: When a worker may take it next (None: not before an operator acts, or final).
    next_attempt_at: dt.datetime | None
    #: How many times a worker took it (the fencing token of the current lease).
    attempts: int
    #: How many times it was left possibly delivered (RFC 1047), each counted.
    uncertain: int
    #: The last reply or error, one line, for lists and status.
    last_reply: Reply | None = None
    last_error: str = ""
    #: The worker holding it while ``sending``, and until when.
    lease_owner: str | None = None
    lease_until: dt.datetime | None = None
    recipients: tuple[Recipient, ...] = ()
    history: tuple[Attempt, ...] = field(default=())

    @property
    def final(self) -> bool:
        """True when nothing more will happen to it without an operator."""
        return self.state in (State.SENT, State.BOUNCED, State.EXPIRED, State.CANCELLED)
