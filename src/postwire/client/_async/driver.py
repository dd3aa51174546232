"""The driver: runs a core procedure over one stream by performing its effects.

A procedure (:mod:`postwire._core.procedures`) decides everything; the driver
buffers :class:`~postwire._core.procedures.Send` bytes and writes them when a
reply is awaited (so a procedure that yields several sends before a receive
is pipelined in one write, RFC 2920), pairs replies through the connection,
streams message content through the body encoder and calls the
end-of-message hook before the commit.  A failed effect is thrown into the
procedure at its ``yield``, so a procedure with messages in flight can give
each of them an outcome.
"""

from __future__ import annotations

import functools
import ssl
import time
from collections.abc import Callable, Generator
from typing import Protocol, TypeVar

from ..._core.body import BodyEncoder
from ..._core.connection import NEED_DATA, ConnectionClosed, SMTPConnection, closed_error
from ..._core.effects import Effect, Fill, Recv, Send, SendBody, Wait
from ..._core.errors import (
    ExtensionNotSupported,
    RecipientsRefused,
    ReplyError,
    Timeout,
    TLSError,
)
from ..._core.reply import Reply
from ..._core.state import State
from ..._core.timeouts import Timeouts
from .._concurrency import READ_SIZE, AsyncTLSUpgrade, acall_hook, aiter_content
from ..cancel import CancelHandle
from ..transcript import Tracer

__all__ = ["FLUSH_AT", "AsyncDriver", "AsyncStream"]

T = TypeVar("T")

#: Write when this much is buffered even if no reply is awaited yet.
FLUSH_AT = 1 << 20
#: States after which a connection is never used again.
_DEAD = (State.CLOSED, State.ERROR)


class AsyncStream(Protocol):
    """What the driver needs from a connection (see :mod:`postwire._net`)."""

    peer: str

    @property
    def local_address(self) -> str | None: ...
    async def read(self, timeout: float | None, step: str) -> bytes: ...
    async def write(
        self, data: bytes | bytearray | memoryview, timeout: float | None, step: str
    ) -> None: ...
    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> None: ...
    def tls_info(self) -> dict[str, object] | None: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...


class AsyncDriver:
    """Runs core procedures over one stream; one per connection."""

    def __init__(
        self,
        stream: AsyncStream,
        conn: SMTPConnection,
        timeouts: Timeouts,
        tracer: Tracer,
        tls_upgrade: AsyncTLSUpgrade | None = None,
    ) -> None:
        self.stream = stream
        self.conn = conn
        self.timeouts = timeouts
        self.tracer = tracer
        self.tls_upgrade = tls_upgrade
        self.out = bytearray()
        self.deadline: float | None = None
        #: Whether anyone listens to the transcript (checked once per run).
        self.tracing = tracer.enabled
        #: True once the end-of-message hook has run for the current message.
        self.committed = False

    @property
    def usable(self) -> bool:
        """Whether the connection can take more commands."""
        return self.conn.state not in _DEAD

    async def run(
        self,
        proc: Generator[Effect, Reply | None, T],
        *,
        size: int = 0,
        hook: Callable[[], object] | None = None,
        cancel: CancelHandle | None = None,
        message_hook: Callable[[int], object] | None = None,
    ) -> T:
        """Perform the procedure's effects until it returns; return its value.

        ``hook`` runs before the final "." of a single transaction;
        ``message_hook`` before that of each message of a batch, with the
        message's index (the ``SendBody`` effect carries it).

        A refusal the procedure decided on leaves the session usable; any other
        failure (I/O, timeout, cancellation, protocol error) closes the
        connection, so that a late reply can never pair with a later command.
        """
        self.tracing = self.tracer.enabled
        value: Reply | None = None
        error: BaseException | None = None
        try:
            while True:
                try:
                    # A failed effect is thrown into the procedure at its yield,
                    # so it can account for what was in flight.
                    effect = proc.send(value) if error is None else proc.throw(error)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                value = error = None
                try:
                    if isinstance(effect, Recv):
                        if self.out:
                            await self._flush()
                        value = await self._read_reply(effect.wait, size)
                    elif isinstance(effect, Fill):
                        if self.out:
                            await self._flush()
                        await self._fill(effect.count, effect.wait, size)
                    elif isinstance(effect, Send):
                        if self.tracing:
                            self.tracer.sent(effect.data, effect.secret)
                        self.out += effect.data
                        if len(self.out) >= FLUSH_AT:
                            await self._flush()
                    elif isinstance(effect, SendBody):
                        body_hook = hook
                        if message_hook is not None and effect.index is not None:
                            body_hook = functools.partial(message_hook, effect.index)
                        await self._send_body(effect.encoder, effect.content, body_hook, cancel)
                    else:
                        await self._flush()
                        await self._upgrade()
                except BaseException as exc:  # thrown into the procedure
                    error = self._explain(exc)
        except BaseException as exc:
            if not self._survives(exc):
                # After a timeout, a cancellation or a broken connection, a late
                # reply could pair with the wrong command: never reuse it.
                self.conn.reset_after_error()
                self.out.clear()
                self.stream.close()
            raise
        finally:
            proc.close()

    def _survives(self, exc: BaseException) -> bool:
        """A refusal leaves the session consistent when no reply is still owed."""
        return (
            isinstance(exc, (ReplyError, RecipientsRefused, ExtensionNotSupported))
            and not self.conn.pending
            and self.usable
        )

    # -- deadlines -----------------------------------------------------------------------

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

    def _explain(self, exc: BaseException) -> BaseException:
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

    # -- effects -------------------------------------------------------------------------

    async def _flush(self) -> None:
        if self.out:
            try:
                await self.stream.write(self.out, self.remaining(self.timeouts.data), "write")
            finally:
                self.out.clear()

    async def _read_reply(self, wait: Wait, size: int) -> Reply:
        conn = self.conn
        event = conn.next_event()
        if isinstance(event, Reply):  # already received (pipelined replies)
            return event
        limit = self.timeouts.for_wait(wait, size)
        step = self._next_step()
        while event is NEED_DATA:
            self._receive(await self.stream.read(self.remaining(limit), step))
            event = conn.next_event()
        if isinstance(event, ConnectionClosed):
            raise closed_error(event)
        return event

    async def _fill(self, count: int, wait: Wait, size: int) -> None:
        conn = self.conn
        if conn.replies_ready >= count or conn.stalled:
            return
        limit = self.timeouts.for_wait(wait, size)
        while conn.replies_ready < count and not conn.stalled:
            self._receive(await self.stream.read(self.remaining(limit), self._next_step()))

    async def _upgrade(self) -> None:
        if self.tls_upgrade is None:
            raise TLSError("STARTTLS accepted but no TLS upgrade is configured", step="STARTTLS")
        await self.tls_upgrade()
        self.tracer.note("TLS started")

    async def _send_body(
        self,
        encoder: BodyEncoder,
        content: object,
        hook: Callable[[], object] | None,
        cancel: CancelHandle | None,
    ) -> None:
        self.committed = False
        if cancel is not None:
            cancel._check()
        if isinstance(content, bytes) and len(content) <= READ_SIZE:
            # A small message in memory: one piece, no iteration needed.
            self._body_chunk(encoder, content)
        else:
            async for chunk in aiter_content(content):
                if cancel is not None:
                    cancel._check()
                self._body_chunk(encoder, chunk)
                if len(self.out) >= FLUSH_AT:
                    await self._flush()
        # Racket's smtp-sending-end-of-message: after all content, before
        # the final "." (or BDAT LAST).  An exception from it cancels.
        if hook is not None:
            await acall_hook(hook)
        if cancel is not None:
            cancel._commit()
        self.committed = True
        tail = encoder.finish()
        if self.tracing:
            self.tracer.sent_data(tail, end=True)
        self.out += tail

    def _body_chunk(self, encoder: BodyEncoder, chunk: bytes) -> None:
        """Encode one piece of message content into the output buffer."""
        data = encoder.feed(chunk)
        if data:
            if self.tracing:
                self.tracer.sent_data(data)
            self.out += data

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

    def _next_step(self) -> str:
        return self.conn.next_verb or "reply"
