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
    """One recipient of an entry, its own state and the reply that decided it.

    Attributes:
        address: the envelope recipient.
        state: where this recipient is (`RecipientState`).
        reply: the server's reply to this recipient (to RCPT, or to the end of
            data), when there was one.
        error: what went wrong when no reply decided (a dropped connection, a
            timeout...).
        next_attempt_at: when it will be tried again (deferred ones), if it will.
        uncertain: how many times it was left possibly delivered (each may be
            one duplicate).
    """

    address: str
    state: RecipientState
    reply: Reply | None = None
    error: str = ""
    next_attempt_at: dt.datetime | None = None
    uncertain: int = 0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt of an entry: one lease, at most one SMTP transaction.

    Attributes:
        number: the entry's claim counter for this attempt (1 for the first).
        worker: the worker that made it (`host:pid:random`).
        relay: the relay it went to (`host:port`; empty when the reaper ended it).
        started_at: when the worker began sending (None for a reaped lease).
        finished_at: when its result was written.
        phase: how far it went: a protocol step (`connect`, `RCPT`...), `end of
            data` once the final "." went out, `lease` when the worker vanished
            and the reaper ended it.
        outcome: what it decided: `delivered`, `deferred`, `bounced`,
            `uncertain`, `partial` (recipients with different verdicts),
            `split` (the rest go in the next transaction), `expired`, or
            `released` (nothing was sent: the worker withdrew it before its
            final ".", or its lease ran out before that and the reaper ended
            it).
        reply: the last reply that counted, if any.
        detail: what went wrong when no reply decided.
    """

    number: int
    worker: str
    relay: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    phase: str
    outcome: str
    reply: Reply | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    """One message in the outbox, as it was when read.

    `recipients` and `history` (the attempts, oldest first) are filled by
    `Outbox.get`; `Outbox.list` leaves `history` empty.  Times are aware UTC
    datetimes.

    Attributes:
        id: the entry's number in this outbox.
        key: the idempotency key (the Message-ID unless `put` was given one).
        message_id: the message's Message-ID, as stored and sent every time.
        state: where the entry is (`State`).
        sender: the envelope sender.
        route: the config-file account it goes through (None: the default).
        priority: higher goes first.
        size: the stored message's size in bytes.
        created_at: when it was put.
        updated_at: when its row last changed.
        next_attempt_at: when a worker may take it next (None: not before an
            operator acts, or final).
        attempts: how many times a worker took it (the fencing token of the
            current lease).
        uncertain: how many times it was left possibly delivered (RFC 1047).
        last_reply: the last reply that decided something, if any.
        last_error: the last error when no reply decided.
        lease_owner: the worker holding it while `sending`.
        lease_until: when that lease runs out unless renewed.
        recipients: each recipient with its own state and reply.
        history: the attempts, oldest first (empty from `Outbox.list`).
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
    next_attempt_at: dt.datetime | None
    attempts: int
    uncertain: int
    last_reply: Reply | None = None
    last_error: str = ""
    lease_owner: str | None = None
    lease_until: dt.datetime | None = None
    recipients: tuple[Recipient, ...] = ()
    history: tuple[Attempt, ...] = field(default=())

    @property
    def final(self) -> bool:
        """True when sent, bounced, expired or cancelled: nothing more happens to it
        without an operator."""
        return self.state in (State.SENT, State.BOUNCED, State.EXPIRED, State.CANCELLED)
