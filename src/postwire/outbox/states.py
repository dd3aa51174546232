"""The states of an entry and of each of its recipients, and who may move an entry where.

An entry is one message: ``queued`` -> ``sending`` (leased by a worker) -> ``sent`` |
``deferred`` (queued again at its next attempt) | ``bounced`` | ``uncertain`` (the final "."
went out and no reply came, RFC 1047) | ``expired`` (its lifetime ran out, RFC 5321
§4.5.4.1); an operator may ``hold``, ``release``, ``retry`` or ``cancel`` it.  Each recipient
has its own state, because one transaction can deliver to some and be refused for others
(RFC 5321 §3.3).  Pure: the storage backends and the CLI ask here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from .._core.errors import StateConflict

__all__ = [
    "CLAIMABLE",
    "FINAL",
    "OPEN",
    "OPERATIONS",
    "RecipientState",
    "State",
    "check_operation",
    "settle",
]


class State(str, enum.Enum):
    """Where an entry is.

    Attributes:
        QUEUED: waiting for a worker (new, or sent back at once: recipients split
            off, a lease reaped before the final ".", an operator's retry).
        SENDING: leased by a worker, which is delivering it.
        SENT: every recipient has a final answer and at least one took the message.
        DEFERRED: waiting for its next attempt after a 4xx or a failed connection.
        BOUNCED: every recipient refused it for good (5xx).
        UNCERTAIN: possibly delivered: the final "." (or BDAT LAST) was sent and
            no reply came (RFC 1047).  Under the `resend` policy it is sent again
            at once; under `hold` its uncertain recipients wait, with no next
            attempt, until an operator releases, retries or cancels it.
        EXPIRED: its lifetime ran out before every recipient had a final answer.
        HELD: set aside by an operator (`hold`) until `release`.
        CANCELLED: withdrawn by an operator before delivery.
    """

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    UNCERTAIN = "uncertain"
    EXPIRED = "expired"
    HELD = "held"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


class RecipientState(str, enum.Enum):
    """Where one recipient of an entry is.

    Attributes:
        PENDING: not tried yet, or due again at once (split off by "too many
            recipients", or an operator's retry).
        DEFERRED: refused for now (4xx, or a failed connection); tried again at
            its next attempt time.
        DELIVERED: the server took the message for it.
        BOUNCED: refused for good (5xx).
        UNCERTAIN: in a transaction whose final "." got no reply; sent again
            (`resend`) or waiting for an operator (`hold`).
        EXPIRED: still open when the entry's lifetime ran out.
    """

    PENDING = "pending"
    DEFERRED = "deferred"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    UNCERTAIN = "uncertain"
    EXPIRED = "expired"

    def __str__(self) -> str:
        return self.value


#: Recipients still to be delivered to.
OPEN = frozenset({RecipientState.PENDING, RecipientState.DEFERRED, RecipientState.UNCERTAIN})
#: States a worker may claim from, once the entry's ``ready_at`` has come.
CLAIMABLE = frozenset({State.QUEUED, State.DEFERRED, State.UNCERTAIN})
#: States nothing leaves except an operator's ``retry`` (bounced, expired) or ``purge``.
FINAL = frozenset({State.SENT, State.BOUNCED, State.EXPIRED, State.CANCELLED})

#: Operator actions: the states each may start from, and where it leads.  For ``release``
#: and ``retry`` the target is nominal: the entry goes back to work as its recipients say
#: (``policy.resume_state``: queued, deferred or uncertain).
OPERATIONS: Mapping[str, tuple[frozenset[State], State]] = {
    "hold": (frozenset({State.QUEUED, State.DEFERRED, State.UNCERTAIN}), State.HELD),
    # An uncertain entry waits for an operator under the "hold" policy: release resends it.
    "release": (frozenset({State.HELD, State.UNCERTAIN}), State.QUEUED),
    "cancel": (
        frozenset({State.QUEUED, State.DEFERRED, State.UNCERTAIN, State.HELD}),
        State.CANCELLED,
    ),
    # Try again now: what waits, what is held, and what failed for good (after a fix).
    "retry": (
        frozenset(
            {
                State.QUEUED,
                State.DEFERRED,
                State.UNCERTAIN,
                State.HELD,
                State.BOUNCED,
                State.EXPIRED,
            }
        ),
        State.QUEUED,
    ),
}


def check_operation(operation: str, state: State) -> State:
    """The state ``operation`` leads to from ``state``; raises :class:`StateConflict` if none."""
    try:
        allowed, target = OPERATIONS[operation]
    except KeyError:
        raise ValueError(f"unknown operation {operation!r}") from None
    if state not in allowed:
        why = (
            "a worker is delivering it; try again when the attempt ends"
            if state is State.SENDING
            else f"{operation} applies to {', '.join(sorted(s.value for s in allowed))}"
        )
        raise StateConflict(
            f"cannot {operation} an entry that is {state.value}: {why}", state=state.value
        )
    return target


def settle(recipients: Iterable[RecipientState]) -> State:
    """The final state of an entry whose recipients all have a final answer.

    Sent when anyone took it (a recipient that bounced meanwhile shows on its
    own), expired when the lifetime ended the wait for someone, else bounced.
    """
    seen = set(recipients)
    if seen & OPEN:
        raise ValueError("settle() needs recipients that all have a final answer")
    if RecipientState.EXPIRED in seen:
        return State.EXPIRED
    if RecipientState.DELIVERED in seen:
        return State.SENT
    return State.BOUNCED
