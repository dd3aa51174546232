"""The outbox's pure policy: which recipients go next, and what an attempt's outcome decides.

No database and no socket: the worker asks :func:`decide` what to write after each
transaction, and the tests ask it too, with plain values.  What a reply means for one
recipient is decided once, in :mod:`postwire._core.outcomes` (delivered, deferred,
bounced, uncertain, "too many recipients"); this module adds time (back-off, lifetime)
and the entry as a whole.

- **Back-off** as Postfix's queue manager: the next attempt comes after the message's age,
  clamped to [``min_backoff``, ``max_backoff``] (300 s and 4000 s there), so the delay
  doubles while the message waits; a 4xx that names its own delay (greylisting) is
  honoured up to ``max_backoff``; a random jitter spreads retries.  RFC 5321 §4.5.4.1
  wants retry intervals and the give-up time configurable: they are, and tests use seconds.
- **Lifetime**: a deferral after ``lifetime`` (5 days, RFC 5321 §4.5.4.1: "at least 4-5
  days") expires what is still open; the last attempt is scheduled no later than that.
- **Too many recipients** (RFC 5321 §4.5.3.1.10): the recipients refused only for that go
  again at once, in the next transaction, and the relay's limit is remembered.
- **Pre-split**: a transaction carries at most ``max_recipients`` (100, the minimum a server
  must accept, RFC 5321 §4.5.3.1.8) or the relay's learned limit; the rest go next, at once.
- **Uncertain** (RFC 1047): ``resend`` (the default; counted on the entry and on each
  recipient, so every duplicate is accounted for) or ``hold`` for an operator.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from .._core.envelope import SendResult
from .._core.outcomes import RecipientVerdict, recipient_outcomes, retry_after
from .._core.reply import Reply
from .states import OPEN, RecipientState, State, settle

__all__ = [
    "Decision",
    "OpenRecipient",
    "RecipientUpdate",
    "RetryPolicy",
    "UncertainPolicy",
    "choose_recipients",
    "decide",
    "resume_state",
]

UncertainPolicy = Literal["resend", "hold"]


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again, when to give up, and what to do with uncertain deliveries.

    All durations are seconds.

    Attributes:
        min_backoff: the shortest delay before another attempt (Postfix's
            `minimal_backoff_time`, 300 s).
        max_backoff: the longest (Postfix's `maximal_backoff_time`, 4000 s);
            the delay is the message's age clamped to these two, so it doubles
            while the message waits.  A 4xx that names its own delay
            (greylisting) is honoured up to `max_backoff`.
        lifetime: after this long in the outbox (from the put, or the last
            operator's retry), a deferral expires whatever is still open
            (5 days).  The last attempt is scheduled no later than that.
        jitter: the fraction a delay may move either way (0.1).
        uncertain: `"resend"` (send an uncertain entry again, counted: at once
            the first time, then after the back-off, until the lifetime ends)
            or `"hold"` (leave it for an operator).
        max_recipients: recipients per transaction (100, the minimum a server
            must accept); a relay's learned "too many recipients" limit lowers it.
    """

    min_backoff: float = 300.0
    max_backoff: float = 4000.0
    lifetime: float = 5 * 86400.0
    jitter: float = 0.1
    uncertain: UncertainPolicy = "resend"
    max_recipients: int = 100

    def __post_init__(self) -> None:
        if not 0 < self.min_backoff <= self.max_backoff:
            raise ValueError("need 0 < min_backoff <= max_backoff")
        if self.lifetime <= 0:
            raise ValueError("lifetime must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.uncertain not in ("resend", "hold"):
            raise ValueError("uncertain must be 'resend' or 'hold'")
        if self.max_recipients < 1:
            raise ValueError("max_recipients must be at least 1")

    def delay(self, age: float, reply: Reply | None, rand: Callable[[], float]) -> float:
        """Seconds until the next attempt of a message ``age`` seconds old.

        ``rand`` returns a float in [0, 1) (``random.random``), for the jitter.
        """
        base = min(max(age, self.min_backoff), self.max_backoff)
        hint = retry_after(reply)
        if hint is not None:
            base = max(base, min(hint, self.max_backoff))
        return base * (1.0 + self.jitter * (2.0 * rand() - 1.0))


@dataclass(frozen=True, slots=True)
class OpenRecipient:
    """A recipient still to be delivered to, as stored."""

    position: int
    address: str
    state: RecipientState
    #: When it may be tried (None: held until an operator acts).
    ready_at: float | None


@dataclass(frozen=True, slots=True)
class RecipientUpdate:
    """What to store for one recipient after an attempt."""

    position: int
    state: RecipientState
    ready_at: float | None
    code: int | None = None
    text: str | None = None
    error: str = ""
    #: Add this to the recipient's count of possible deliveries.
    uncertain: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """What to store for an entry after an attempt."""

    state: State
    ready_at: float | None
    updates: tuple[RecipientUpdate, ...]
    #: One word for the attempt record: delivered, deferred, bounced, uncertain, partial,
    #: expired.
    outcome: str
    code: int | None = None
    text: str | None = None
    error: str = ""
    #: Add this to the entry's count of possible deliveries.
    uncertain: int = 0
    #: The relay said "too many recipients" after taking this many.
    learned_limit: int | None = None
    #: Recipients by verdict, for the metrics.
    delivered: int = 0
    deferred: int = 0
    bounced: int = 0
    expired: int = 0
    uncertain_recipients: int = 0


def choose_recipients(
    open_recipients: Sequence[OpenRecipient], now: float, cap: int
) -> list[OpenRecipient]:
    """The recipients of the next transaction: those due now, in order, at most ``cap``."""
    due = [r for r in open_recipients if r.ready_at is not None and r.ready_at <= now]
    due.sort(key=lambda r: r.position)
    return due[: max(1, cap)]


def resume_state(
    open_recipients: Sequence[OpenRecipient], now: float
) -> tuple[State, float | None]:
    """The state and ready time of an entry given its open recipients (none final yet).

    Used when an attempt ends without a verdict (a lease reaped before the final ".", a
    send withdrawn by the worker) and by :func:`decide`.
    """
    readies = [r.ready_at for r in open_recipients if r.ready_at is not None]
    ready = min(readies) if readies else None
    if any(r.state is RecipientState.UNCERTAIN for r in open_recipients):
        return State.UNCERTAIN, ready
    if ready is None:  # pragma: no cover - only uncertain recipients are ever held
        return State.HELD, None
    return (State.QUEUED if ready <= now else State.DEFERRED), ready


def _reply_fields(reply: Reply | None) -> tuple[int | None, str | None]:
    return (None, None) if reply is None else (reply.code, reply.text)


def decide(
    policy: RetryPolicy,
    *,
    open_recipients: Sequence[OpenRecipient],
    sent: Sequence[OpenRecipient],
    closed: Sequence[RecipientState],
    outcome: object,
    lifetime_from: float,
    now: float,
    rand: Callable[[], float] = random.random,
) -> Decision:
    """What one transaction's ``outcome`` decides for the entry and its recipients.

    ``open_recipients`` are all the entry's open recipients before the attempt,
    ``sent`` those that were in this transaction, ``closed`` the states of the
    recipients that already had a final answer.  ``outcome`` is a
    :class:`~postwire.SendResult` or the error the send gave for this message.
    """
    if (
        isinstance(outcome, SendResult)
        and not outcome.refused
        and len(sent) == len(open_recipients)
        and not any(c is not RecipientState.DELIVERED for c in closed)
    ):
        # The common case, on the hot path: everyone took it, nobody else is waiting.
        reply = outcome.reply
        delivered = RecipientState.DELIVERED
        return Decision(
            state=State.SENT,
            ready_at=None,
            updates=tuple(
                RecipientUpdate(r.position, delivered, None, reply.code, reply.text) for r in sent
            ),
            outcome="delivered",
            code=reply.code,
            text=reply.text,
            delivered=len(sent),
        )
    verdicts = recipient_outcomes([r.address for r in sent], outcome)
    age = now - lifetime_from
    lifetime_end = lifetime_from + policy.lifetime
    resend = policy.uncertain == "resend"
    updates: dict[int, RecipientUpdate] = {}
    # "split": sent again at once for want of room (452 4.5.3), which is not a deferral.
    counts = {
        "delivered": 0,
        "deferred": 0,
        "bounced": 0,
        "uncertain": 0,
        "expired": 0,
        "split": 0,
    }
    too_many = 0
    backed_off = False
    last_reply: Reply | None = None
    last_error = ""
    for r in sent:
        verdict = verdicts[r.address]
        code, text = _reply_fields(verdict.reply)
        if verdict.reply is not None:
            last_reply = verdict.reply
        if verdict.error:
            last_error = verdict.error
        kind = verdict.verdict
        if kind is RecipientVerdict.DELIVERED:
            update = RecipientUpdate(r.position, RecipientState.DELIVERED, None, code, text)
        elif kind is RecipientVerdict.BOUNCED:
            update = RecipientUpdate(
                r.position, RecipientState.BOUNCED, None, code, text, verdict.error
            )
        elif kind is RecipientVerdict.UNCERTAIN:
            # The first time, at once: a dropped connection is usually a passing fault,
            # and the copy is counted.  Uncertain again: the relay keeps losing the
            # reply after the ".", so back off as for a deferral (as Postfix treats
            # "lost connection after end of data") and let the lifetime end it; each
            # resend may be a real duplicate.
            ready: float | None = None
            if resend:
                ready = now
                if r.state is RecipientState.UNCERTAIN:
                    backed_off = True
                    ready = max(now, min(now + policy.delay(age, None, rand), lifetime_end))
            update = RecipientUpdate(
                r.position,
                RecipientState.UNCERTAIN,
                ready,
                code,
                text,
                verdict.error,
                uncertain=1,
            )
        elif verdict.too_many:
            # RFC 5321 §4.5.3.1.10: not refused, only too many for one transaction.
            too_many += 1
            update = RecipientUpdate(r.position, RecipientState.PENDING, now, code, text)
        else:
            backed_off = True
            retry_at = min(now + policy.delay(age, verdict.reply, rand), lifetime_end)
            update = RecipientUpdate(
                r.position, RecipientState.DEFERRED, max(retry_at, now), code, text, verdict.error
            )
        updates[r.position] = update
        counts[_count_key(update.state)] += 1
    if backed_off and age >= policy.lifetime:
        # The lifetime is over: what is still open expires.  An uncertain recipient
        # expires only when it is due for resending (not held for an operator), and
        # keeps the count of its possible deliveries.
        for r in open_recipients:
            current = updates.get(r.position)
            rstate = current.state if current is not None else r.state
            ready = current.ready_at if current is not None else r.ready_at
            resending = rstate is RecipientState.UNCERTAIN and ready is not None
            if rstate in (RecipientState.DEFERRED, RecipientState.PENDING) or resending:
                base = current or RecipientUpdate(r.position, rstate, None)
                updates[r.position] = RecipientUpdate(
                    r.position,
                    RecipientState.EXPIRED,
                    None,
                    base.code,
                    base.text,
                    f"expired after {policy.lifetime:g} s in the outbox"
                    + (f"; last: {base.error}" if base.error else ""),
                    uncertain=base.uncertain,
                )
                counts["expired"] += 1
                if current is not None:
                    counts[_count_key(rstate)] -= 1
    after = [
        r if r.position not in updates else _after(r, updates[r.position]) for r in open_recipients
    ]
    still_open = [r for r in after if r.state in OPEN]
    if still_open:
        state, ready = resume_state(still_open, now)
    else:
        state, ready = settle([*closed, *(r.state for r in after)]), None
    # RFC 5321 §4.5.3.1.10: the limit is on recipients the server accepted; those it
    # refused or deferred for other reasons did not count towards it.  Learn only from a
    # transaction that delivered (a failed DATA says nothing about the limit).
    learned = None
    taken = counts["delivered"] + counts["uncertain"]
    if too_many and taken:
        learned = taken
    code, text = _reply_fields(last_reply)
    return Decision(
        state=state,
        ready_at=ready,
        updates=tuple(updates[p] for p in sorted(updates)),
        outcome=_summary(counts),
        code=code,
        text=text,
        error=last_error,
        uncertain=1 if counts["uncertain"] else 0,
        learned_limit=learned,
        delivered=counts["delivered"],
        deferred=counts["deferred"],
        bounced=counts["bounced"],
        expired=counts["expired"],
        uncertain_recipients=counts["uncertain"],
    )


def _after(r: OpenRecipient, update: RecipientUpdate) -> OpenRecipient:
    return OpenRecipient(r.position, r.address, update.state, update.ready_at)


def _count_key(state: RecipientState) -> str:
    return "split" if state is RecipientState.PENDING else state.value


def _summary(counts: dict[str, int]) -> str:
    named = [kind for kind, n in counts.items() if n]
    if not named:
        return "nothing"
    return named[0] if len(named) == 1 else "partial"
