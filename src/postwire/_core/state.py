"""The client's protocol states and every transition between them.

Rule (after h11's ``_state.py``): everything that decides which command may be
sent when, and how a reply moves the session, lives in the two tables below.
``SEND`` is consulted when a command is written; ``ON_REPLY`` when its reply is
paired with it.  Sending is optimistic, as RFC 2920 pipelining requires: the
state moves when the command is written, and a reply moves it only if it
answers the newest command of the current transaction (see
``SMTPConnection``).
"""

from __future__ import annotations

import enum

from . import commands as c

__all__ = ["ON_REPLY", "QUIET_ON_SUCCESS", "SEND", "State"]


class State(enum.Enum):
    #: Connected; the 220 greeting has not been read yet.
    CONNECTING = "connecting"
    #: Greeted (or TLS just started): EHLO/HELO must come next (RFC 3207 §4.2).
    GREETED = "greeted"
    #: Between mail transactions.
    READY = "ready"
    #: STARTTLS sent; waiting for its 220 (RFC 3207 §4).
    TLS_PENDING = "tls pending"
    #: STARTTLS accepted: the driver must do the TLS handshake now.
    TLS_HANDSHAKE = "tls handshake"
    #: Inside a SASL exchange (RFC 4954 §4).
    AUTH = "auth"
    #: MAIL sent: RCPT, DATA or BDAT may follow (RFC 5321 §3.3).
    TRANSACTION = "transaction"
    #: DATA sent; waiting for 354.
    DATA_PENDING = "data pending"
    #: 354 received: message content, then the final ".".
    DATA = "data"
    #: A BDAT chunk failed: RFC 3030 §2 wants RSET before anything else.
    NEEDS_RSET = "needs rset"
    #: QUIT sent.
    CLOSING = "closing"
    #: The session is over (QUIT answered, 421, or the connection closed).
    CLOSED = "closed"
    #: A protocol error: nothing more can be trusted.
    ERROR = "error"


_ANY_TIME: dict[type[c.Command], State | None] = {c.Noop: None, c.Quit: State.CLOSING}

# State -> {command type -> new state (None: unchanged)}.  A command missing
# from a state's row may not be sent in that state.
SEND: dict[State, dict[type[c.Command], State | None]] = {
    State.CONNECTING: {c.Quit: State.CLOSING},
    State.GREETED: {c.Ehlo: None, c.Helo: None, c.Lhlo: None, c.Rset: None, **_ANY_TIME},
    State.READY: {
        c.Ehlo: None,
        c.Helo: None,
        c.Lhlo: None,
        c.StartTLS: State.TLS_PENDING,
        c.Auth: State.AUTH,
        c.Mail: State.TRANSACTION,
        c.Rset: None,
        **_ANY_TIME,
    },
    State.AUTH: {c.AuthResponse: None},
    State.TRANSACTION: {
        c.Rcpt: None,
        c.Data: State.DATA_PENDING,
        c.Bdat: None,  # BDAT ... LAST is handled in SMTPConnection: it ends the transaction
        c.Rset: State.READY,
        **_ANY_TIME,
    },
    State.DATA: {c.DataEnd: State.READY},
    State.NEEDS_RSET: {c.Rset: State.READY, c.Quit: State.CLOSING},
    State.TLS_PENDING: {},
    State.TLS_HANDSHAKE: {},
    State.DATA_PENDING: {},
    State.CLOSING: {},
    State.CLOSED: {},
    State.ERROR: {},
}

# (state, command type, reply class digit) -> new state.  Consulted only when
# the reply answers a command of the transaction that is still current.
ON_REPLY: dict[tuple[State, type[c.Command], int], State] = {
    (State.CONNECTING, c.Greeting, 2): State.GREETED,
    # A 554 greeting leaves CONNECTING, where QUIT is still allowed (RFC 5321 §3.1).
    (State.GREETED, c.Ehlo, 2): State.READY,
    (State.GREETED, c.Helo, 2): State.READY,
    (State.GREETED, c.Lhlo, 2): State.READY,
    (State.TLS_PENDING, c.StartTLS, 2): State.TLS_HANDSHAKE,
    (State.TLS_PENDING, c.StartTLS, 4): State.READY,
    (State.TLS_PENDING, c.StartTLS, 5): State.READY,
    **{(State.AUTH, cmd, k): State.READY for cmd in (c.Auth, c.AuthResponse) for k in (2, 4, 5)},
    (State.TRANSACTION, c.Mail, 4): State.READY,
    (State.TRANSACTION, c.Mail, 5): State.READY,
    (State.DATA_PENDING, c.Data, 3): State.DATA,
    (State.DATA_PENDING, c.Data, 2): State.READY,
    (State.DATA_PENDING, c.Data, 4): State.READY,
    (State.DATA_PENDING, c.Data, 5): State.READY,
    (State.TRANSACTION, c.Bdat, 4): State.NEEDS_RSET,
    (State.TRANSACTION, c.Bdat, 5): State.NEEDS_RSET,
    **{(State.CLOSING, c.Quit, k): State.CLOSED for k in (2, 3, 4, 5)},
}

#: Commands whose positive reply moves no state: ``ON_REPLY`` has no 2xx entry
#: for them (tests/test_connection.py checks it), so the connection skips the
#: lookup on the pipelined hot path.
QUIET_ON_SUCCESS: frozenset[type[c.Command]] = frozenset(
    {c.Mail, c.Rcpt, c.DataEnd, c.Noop, c.Rset}
)
