"""What the sync and the asyncio drivers share: everything but the waiting.

A driver runs a core procedure: it buffers :class:`~postwire._core.procedures.Send`
bytes, writes them when a reply is awaited, pairs replies through the
connection, streams message content through the body encoder and calls the
end-of-message hook before the commit.  The two drivers differ only in how
they wait (``socket`` or ``await``); the bookkeeping lives here once.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

from ._core.body import BodyEncoder
from ._core.connection import ConnectionClosed, SMTPConnection, closed_error
from ._core.message import PreparedMessage
from ._core.pooling import retryable
from ._core.state import State
from ._core.timeouts import Timeouts
from .errors import (
    ExtensionNotSupported,
    ProtocolError,
    RecipientsRefused,
    ReplyError,
    ServerDisconnected,
    SMTPError,
    Timeout,
)
from .trace import Tracer

__all__ = [
    "CHUNK",
    "DEAD",
    "DriverBase",
    "Usable",
    "aiter_content",
    "iter_content",
    "not_sent",
    "resendable",
]

#: Size of the pieces read from files and cut from large byte strings.
CHUNK = 1 << 20
#: Write when this much is buffered even if no reply is awaited yet.
FLUSH_AT = 1 << 20
#: States after which a connection is never used again.
DEAD = (State.CLOSED, State.ERROR)


class Usable(Exception):
    """Carries a refusal out of a driver loop without breaking the session."""

    def __init__(self, error: SMTPError) -> None:
        self.error = error


class DriverBase:
    """State and decisions shared by :class:`~postwire.client.Session` and its async twin."""

    def __init__(self, conn: SMTPConnection, timeouts: Timeouts, tracer: Tracer) -> None:
        self.conn = conn
        self.timeouts = timeouts
        self.tracer = tracer
        self.out = bytearray()
        self.deadline: float | None = None
        #: Whether anyone listens to the transcript (checked once per run).
        self.tracing = tracer.enabled
        #: True once the end-of-message hook has run for the current message.
        self.committed = False

    def start_deadline(self, total: float | None) -> None:
        self.deadline = time.monotonic() + total if total is not None else None

    def remaining(self, limit: float | None) -> float | None:
        """The time a wait may take: its own limit, cut by the send's deadline."""
        if self.deadline is None:
            return limit
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Timeout("the send took longer than its total deadline", step="send")
        return left if limit is None else min(limit, left)

    def explain(self, exc: BaseException) -> BaseException:
        """A timeout caused by the send's total deadline says so."""
        if (
            isinstance(exc, Timeout)
            and self.deadline is not None
            and time.monotonic() >= self.deadline - 0.01
            and "total deadline" not in str(exc)
        ):
            err = Timeout(
                f"{exc.step}: the send took longer than its total deadline", step=exc.step
            )
            err.__cause__ = exc
            return err
        return exc

    def refusal(self, exc: BaseException) -> BaseException:
        """Wrap a refusal in :class:`Usable` when the session survives it.

        A refusal the procedure decided on leaves the session consistent
        (RSET was sent and answered) when no reply is still owed.
        """
        if (
            isinstance(exc, (ReplyError, RecipientsRefused, ExtensionNotSupported))
            and not self.conn.pending
            and self.conn.state not in DEAD
        ):
            return Usable(exc)
        return exc

    def _receive(self, data: bytes) -> None:
        """Hand received bytes to the connection; the transcript sees each new reply."""
        conn = self.conn
        if not self.tracing:
            conn.receive_data(data)
            return
        before = conn.replies_ready
        conn.receive_data(data)
        self.tracer.received_raw(data)
        for reply in conn.ready_replies[before:]:
            self.tracer.received(reply)

    def _body_chunk(self, encoder: BodyEncoder, chunk: bytes) -> None:
        """Encode one piece of message content into the output buffer."""
        data = encoder.feed(chunk)
        if data:
            if self.tracing:
                self.tracer.sent_data(data)
            self.out += data

    def next_step(self) -> str:
        return self.conn.next_verb or "reply"

    @staticmethod
    def closed_error(event: ConnectionClosed) -> ServerDisconnected:
        return closed_error(event)

    def broken(self) -> None:
        # After a timeout, a cancellation or a broken connection, a late reply
        # could pair with the wrong command: the connection is never reused.
        self.conn.reset_after_error()
        self.out.clear()


def not_sent(exc: BaseException) -> ServerDisconnected:
    """The outcome of a message that was never sent because the connection broke."""
    err = ServerDisconnected(
        f"not sent: the connection broke before this message ({exc})", step="send"
    )
    err.__cause__ = exc
    return err


def resendable(item: object, outcome: object) -> bool:
    """Whether a message may be sent again after its connection failed.

    Only when it certainly was not delivered (not sent, or refused by a
    protocol failure before its end of data) and its content can be read
    again (bytes, not a consumed file or iterator).
    """
    if not isinstance(item, PreparedMessage) or not isinstance(item.content, bytes):
        return False
    if outcome is None or retryable(outcome):
        return True
    return isinstance(outcome, ProtocolError)


def _chunk_bytes(content: bytes) -> Iterator[bytes]:
    if len(content) <= CHUNK:
        yield content
        return
    view = memoryview(content)
    for i in range(0, len(content), CHUNK):
        yield bytes(view[i : i + CHUNK])


def _check_chunk(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"message chunks must be bytes, not {type(chunk).__name__}")


def iter_content(content: object) -> Iterator[bytes]:
    """The chunks of a message: bytes, a binary file, or an iterable of bytes."""
    if content is None:
        return
    if isinstance(content, bytes):
        yield from _chunk_bytes(content)
        return
    read = getattr(content, "read", None)
    if read is not None:
        while chunk := read(CHUNK):
            if isinstance(chunk, str):
                raise TypeError("message file must be opened in binary mode ('rb')")
            yield _check_chunk(chunk)
        return
    if hasattr(content, "__aiter__"):
        raise TypeError("an async iterable can only be sent with AsyncClient")
    for chunk in content:  # type: ignore[attr-defined]
        yield _check_chunk(chunk)


async def aiter_content(content: object) -> AsyncIterator[bytes]:
    """:func:`iter_content`, plus async iterables of bytes."""
    if hasattr(content, "__aiter__"):
        async for chunk in content:
            yield _check_chunk(chunk)
        return
    for chunk in iter_content(content):
        yield chunk
