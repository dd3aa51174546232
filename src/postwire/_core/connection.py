"""The sans-IO SMTP client connection.

``SMTPConnection`` turns commands into bytes (``send``) and bytes into replies
(``receive_data`` then ``next_event``).  It never touches a socket.  Every
command written is put on an explicit queue of pending commands, and every
reply is paired with the oldest of them: a reply with nothing pending is a
protocol error, never a silent shift of every later pairing (the bug class of
aiosmtplib's 320180e).
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from . import commands as c
from .encoding import DotStuffer
from .errors import (
    LocalProtocolError,
    PossiblyDelivered,
    ProtocolError,
    ReplySyntaxError,
    ServerDisconnected,
    describe,
)
from .extensions import Extensions
from .reply import Reply
from .reply_parser import DEFAULT_MAX_LINE_LENGTH, DEFAULT_MAX_REPLY_SIZE, ReplyParser
from .state import ON_REPLY, QUIET_ON_SUCCESS, SEND, State

__all__ = [
    "NEED_DATA",
    "ConnectionClosed",
    "Event",
    "SMTPConnection",
    "closed_error",
]


class _Need(enum.Enum):
    NEED_DATA = "need data"


#: ``next_event`` returns this when it needs more bytes from the server.
NEED_DATA = _Need.NEED_DATA


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The server closed the connection; ``pending`` commands never got a reply.

    ``reason`` is the 421 reply with which the server announced it, if any.
    """

    pending: tuple[c.Command, ...]
    reason: Reply | None = None


Event = Reply | ConnectionClosed | _Need


def closed_error(event: ConnectionClosed) -> ServerDisconnected:
    """The error for a server that closed while replies were owed.

    If the end of a message's data (the final ``.`` or ``BDAT ... LAST``)
    was among the unanswered commands, the server may have accepted the
    message before closing: say so, so that nobody resends it blindly.  A
    server that announced its close with 421 processed nothing after the
    command it answered so: then nothing later was delivered.
    """
    verbs = [cmd.verb for cmd in event.pending]
    if event.reason is not None:
        step = event.reason.command or "reply"
        return ServerDisconnected(
            f"{describe(step, event.reason)} (server closing connection)",
            reply=event.reason,
            step=step,
        )
    if any(
        isinstance(cmd, c.DataEnd) or (isinstance(cmd, c.Bdat) and cmd.last)
        for cmd in event.pending
    ):
        return PossiblyDelivered(
            "the server closed the connection after the end of the message and before "
            "its reply: the message may have been delivered "
            f"(waiting for: {', '.join(verbs)})",
            step="end of data",
        )
    step = verbs[0] if verbs else "reply"
    return ServerDisconnected(
        f"the server closed the connection while waiting for the reply to {step}", step=step
    )


@dataclass(slots=True)
class _Pending:
    command: c.Command
    tx: int


class SMTPConnection:
    """One SMTP client session, without I/O.

    Args:
        max_line_length: longest reply line accepted.
        max_reply_size: largest reply (all lines) accepted.
    """

    def __init__(
        self,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_reply_size: int = DEFAULT_MAX_REPLY_SIZE,
        lmtp: bool = False,
    ) -> None:
        self._parser = ReplyParser(max_line_length=max_line_length, max_reply_size=max_reply_size)
        self._pending: deque[_Pending] = deque([_Pending(c.Greeting(), 0)])
        self._tx = 0
        self._eof = False
        self._ready: deque[Reply] = deque()
        self._error: ProtocolError | None = None
        #: The 421 reply with which the server announced that it is closing.
        self._closing: Reply | None = None
        self._last_verb = ""
        self._stuffer: DotStuffer | None = None
        self.state = State.CONNECTING
        self.extensions = Extensions()
        self.tls_active = False
        self.authenticated = False
        #: The server's opening reply (220, or the refusal), once read.
        self.greeting: Reply | None = None
        #: LMTP (RFC 2033): LHLO, and one reply per accepted recipient after the data.
        self.lmtp = lmtp

    # -- sending ---------------------------------------------------------------

    @property
    def transaction_id(self) -> int:
        """A number that grows with every MAIL sent (identifies the current transaction)."""
        return self._tx

    @property
    def unanswered(self) -> int:
        """How many commands written wait for their replies (``len(pending)``, cheaply)."""
        return len(self._pending)

    def raise_protocol_error(self) -> None:
        """Raise now the protocol error already seen (an unsolicited reply, bad framing).

        Replies that arrived before it are still paired; a caller that is about
        to report outcomes calls this first, so that no outcome rests on replies
        an extra line may have shifted.
        """
        if self._error is not None:
            self.state = State.ERROR
            raise self._error

    @property
    def pending(self) -> tuple[c.Command, ...]:
        """Commands written whose replies have not arrived, oldest first."""
        return tuple(p.command for p in self._pending)

    def send(self, command: c.Command) -> bytes:
        """Record ``command`` as sent and return its bytes for the wire."""
        if not self._pending and (self._error is not None or self._parser.buffered):
            # Bytes arrived that no command asked for: pairing the next reply
            # with this command would shift every later pairing by one.
            self.state = State.ERROR
            raise self._error or self._unsolicited(None)
        row = SEND[self.state]
        kind = type(command)
        if kind not in row:
            raise LocalProtocolError(f"cannot send {command.verb} in state {self.state.value}")
        new = row[kind]
        if kind is c.Mail:
            self._tx += 1
        if kind is c.Bdat and isinstance(command, c.Bdat) and command.last:
            new = State.READY
        if new is not None:
            self.state = new
        self._pending.append(_Pending(command, self._tx))
        # Only envelope commands are remembered: never AUTH lines (credentials).
        return c.wire(command) if kind is c.Mail or kind is c.Rcpt else command.to_bytes()

    def send_data(self, chunk: bytes) -> bytes:
        """Encode a piece of message content (after 354) for the wire."""
        if self.state is not State.DATA:
            raise LocalProtocolError(f"cannot send message data in state {self.state.value}")
        if self._stuffer is None:
            self._stuffer = DotStuffer()
        return self._stuffer.feed(chunk)

    def end_data(self, replies: int = 1) -> bytes:
        """The bytes that end the content, including the final ``.`` line.

        ``replies``: how many replies the ``.`` is owed; LMTP answers once per
        recipient accepted (RFC 2033 §4.2), SMTP once.
        """
        if self.state is not State.DATA:
            raise LocalProtocolError(f"cannot end message data in state {self.state.value}")
        tail = self._stuffer.finish() if self._stuffer is not None else b".\r\n"
        self._stuffer = None
        end = c.DataEnd()
        self.send(end)
        for _ in range(replies - 1):
            self._pending.append(_Pending(end, self._tx))
        return tail

    def send_chunk(self, chunk: bytes, *, last: bool) -> bytes:
        """``BDAT n [LAST]`` followed by the chunk (RFC 3030 §2), as one piece of bytes."""
        return self.send(c.Bdat(len(chunk), last)) + chunk

    # -- receiving -------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the server; ``b""`` means the server closed.

        Complete replies are parsed and paired with their commands at once,
        so a burst of pipelined replies is handled in one pass; errors are
        kept and raised by :meth:`next_event` after the replies before them.
        """
        if not data:
            self._eof = True
            return
        self._parser.feed(data)
        if self._error is not None:
            return
        parser = self._parser
        pending = self._pending
        ready = self._ready
        verb = ""
        try:
            while True:
                verb = pending[0].command.verb if pending else ""
                reply = parser.next_reply(verb)
                if reply is None:
                    return
                if not pending:
                    self._error = self._unsolicited(reply)
                    return
                self._on_reply(pending.popleft(), reply)
                self._last_verb = verb
                ready.append(reply)
                if self._closing is not None:
                    return  # RFC 5321 §3.8: nothing after a 421 counts
        except ReplySyntaxError as exc:
            self._error = ProtocolError(
                f"bad reply from server to {verb or 'nothing'}: {exc}", step=verb
            )

    def _unsolicited(self, reply: Reply | None) -> ProtocolError:
        after = f" after the reply to {self._last_verb}" if self._last_verb else ""
        shown = f": {reply}" if reply is not None else ""
        return ProtocolError(
            f"{self._last_verb or 'reply'}: unsolicited reply from server{after} "
            f"(no command was waiting for it){shown}",
            reply=reply,
            step=self._last_verb or "reply",
        )

    @property
    def replies_ready(self) -> int:
        """Replies received and paired, not yet taken by :meth:`next_event`."""
        return len(self._ready)

    @property
    def ready_replies(self) -> tuple[Reply, ...]:
        """The replies :attr:`replies_ready` counts, oldest first."""
        return tuple(self._ready)

    @property
    def stalled(self) -> bool:
        """True when no further reply can come: an error, a 421, or the server closed."""
        return self._error is not None or self._eof or self._closing is not None

    def next_event(self) -> Event:
        """The next reply (paired with its command), ``NEED_DATA`` or ``ConnectionClosed``."""
        if self._ready:
            return self._ready.popleft()
        if self._error is not None:
            self.state = State.ERROR
            raise self._error
        if self.state is State.ERROR:
            raise LocalProtocolError("the connection had a protocol error")
        if self._eof or self._closing is not None:
            unanswered = self.pending
            self._pending.clear()
            self.state = State.CLOSED
            return ConnectionClosed(unanswered, self._closing)
        return NEED_DATA

    def next_reply(self) -> Reply:
        """The next reply, which the caller knows has arrived (see ``replies_ready``).

        Raises the protocol error that was seen, or the error for a closed
        connection (:func:`closed_error`).
        """
        event = self.next_event()
        if isinstance(event, Reply):
            return event
        if isinstance(event, ConnectionClosed):
            raise closed_error(event)
        raise LocalProtocolError("next_reply() called before the reply arrived")

    @property
    def next_verb(self) -> str:
        """The verb of the oldest command still waiting for its reply, or ``""``."""
        return self._pending[0].command.verb if self._pending else ""

    def _on_reply(self, entry: _Pending, reply: Reply) -> None:
        code = reply.code
        if code == 421:
            # RFC 5321 §3.8: 421 means the server is closing the channel.
            self.state = State.CLOSED
            self._closing = reply
            return
        kind = type(entry.command)
        if kind in QUIET_ON_SUCCESS and 200 <= code < 300:
            return  # the common case: a positive reply that moves nothing
        if entry.tx == self._tx:
            new = ON_REPLY.get((self.state, kind, reply.code // 100))
            if new is not None:
                self.state = new
        if (kind is c.Ehlo or kind is c.Lhlo) and reply.is_positive:
            self.extensions = Extensions.from_reply(reply)
        elif kind is c.Helo and reply.is_positive:
            self.extensions = Extensions()
        elif kind in (c.Auth, c.AuthResponse) and reply.is_positive:
            self.authenticated = True

    # -- TLS -------------------------------------------------------------------

    def start_tls(self) -> None:
        """Record that the TLS handshake is done, after STARTTLS got its 220.

        RFC 3207 §4.2: the client must discard all knowledge from before TLS,
        and bytes the server sent after its 220 but before the handshake
        were injected by someone in the middle (CVE-2011-0411 class).
        """
        if self.state is not State.TLS_HANDSHAKE:
            raise LocalProtocolError(f"cannot start TLS in state {self.state.value}")
        if self._parser.buffered or self._ready or self._error is not None:
            self.state = State.ERROR
            raise ProtocolError(
                "the server sent data after its STARTTLS reply, before the TLS handshake "
                "(possible STARTTLS response injection); refusing to continue",
                step="STARTTLS",
            )
        self.state = State.GREETED
        self.extensions = Extensions()
        self.tls_active = True
        self.authenticated = False

    def implicit_tls(self) -> None:
        """Record that the connection was TLS from the first byte (port 465)."""
        self.tls_active = True

    def reset_after_error(self) -> None:
        """Give up on the connection after an I/O error or timeout."""
        self.state = State.ERROR
        self._pending.clear()
