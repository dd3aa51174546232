"""Drive a core procedure with scripted server bytes: no socket, no driver, no clock.

:func:`drive` does what a driver does (buffer what the procedure sends, write
it when a reply is awaited, stream message content through the body
encoder), but the server is a list of *turns*: each time the procedure waits
for a reply that has not arrived, the next turn's bytes are received.  When
the turns run out the server has closed the connection.  The result is what
was written, write by write, so tests can check pipelining (one write per
group) as well as the bytes, and the procedure's value or error.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from postwire._core.connection import NEED_DATA, ConnectionClosed, SMTPConnection, closed_error
from postwire._core.effects import Effect, Fill, Recv, Send, SendBody, UpgradeTLS
from postwire._core.procedures import greet
from postwire._core.reply import Reply

#: What ``writes`` holds where the TLS handshake happened.
TLS = b"<TLS handshake>"


@dataclass
class Driven:
    """What a procedure did against the script."""

    #: Each write the driver would make, in order (what was buffered when a reply was awaited).
    writes: list[bytes] = field(default_factory=list)
    value: Any = None
    error: BaseException | None = None
    #: Server turns that were never needed.
    unread: list[bytes] = field(default_factory=list)

    @property
    def wire(self) -> bytes:
        return b"".join(w for w in self.writes if w != TLS)


def greeted(ehlo: bytes) -> SMTPConnection:
    """A connection past the greeting and EHLO, with the extensions ``ehlo`` announces."""
    conn = SMTPConnection()
    done = drive(greet(conn, "client.test"), conn, [b"220 mx.test ESMTP\r\n", ehlo])
    assert done.error is None and done.unread == [], done
    return conn


def drive(
    proc: Generator[Effect, Reply | None, Any],
    conn: SMTPConnection,
    turns: Sequence[bytes],
) -> Driven:
    """Run ``proc`` against the scripted ``turns``; never raises what the procedure raises."""
    out = Driven()
    pending = bytearray()
    script = list(turns)

    def flush() -> None:
        if pending:
            out.writes.append(bytes(pending))
            pending.clear()

    def receive_next_turn() -> None:
        conn.receive_data(script.pop(0) if script else b"")

    value: Reply | None = None
    error: BaseException | None = None
    while True:
        try:
            effect = proc.send(value) if error is None else proc.throw(error)
        except StopIteration as stop:
            out.value = stop.value
            break
        except Exception as exc:  # the procedure's verdict
            out.error = exc
            break
        value = error = None
        try:
            if isinstance(effect, Send):
                pending += effect.data
            elif isinstance(effect, Recv):
                flush()
                event = conn.next_event()
                while event is NEED_DATA:
                    receive_next_turn()
                    event = conn.next_event()
                if isinstance(event, ConnectionClosed):
                    raise closed_error(event)
                value = event
            elif isinstance(effect, Fill):
                flush()
                while conn.replies_ready < effect.count and not conn.stalled:
                    receive_next_turn()
            elif isinstance(effect, SendBody):
                content = effect.content
                if content:
                    assert isinstance(content, bytes)
                    pending += effect.encoder.feed(content)
                pending += effect.encoder.finish()
            elif isinstance(effect, UpgradeTLS):
                flush()
                out.writes.append(TLS)
        except Exception as exc:  # thrown into the procedure, as a driver does
            error = exc
    flush()
    out.unread = script
    return out
