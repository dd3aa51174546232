"""The asyncio SMTP client: the same core procedures, driven with ``await``."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ._base import BaseClient, TLSMode
from ._core import procedures as p
from ._core.batch import send_batch
from ._core.body import BodyEncoder
from ._core.commands import Noop
from ._core.connection import NEED_DATA, ConnectionClosed, SMTPConnection
from ._core.envelope import SendResult
from ._core.message import PreparedMessage
from ._core.names import ehlo_name
from ._core.reply import Reply
from ._core.timeouts import Timeouts
from ._driver import CHUNK, FLUSH_AT, DriverBase, Usable, aiter_content, not_sent
from ._net.aio import AsyncStream, open_connection
from ._net.tls import explain_tls_error
from .client import BATCH, _greeting_hint, _simple
from .errors import AuthenticationError, SMTPError, Timeout, TLSError
from .trace import Tracer

__all__ = ["AsyncClient", "AsyncSession"]

T = TypeVar("T")
logger = logging.getLogger("postwire")


class AsyncSession(DriverBase):
    """Runs core procedures over an asyncio stream (the async driver)."""

    def __init__(
        self,
        stream: AsyncStream,
        conn: SMTPConnection,
        timeouts: Timeouts,
        tracer: Tracer,
        tls_upgrade: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(conn, timeouts, tracer)
        self.stream = stream
        self.tls_upgrade = tls_upgrade

    async def run(
        self,
        proc: Generator[p.Effect, Reply | None, T],
        *,
        size: int = 0,
        hook: Callable[[], object] | None = None,
    ) -> T:
        """Perform the procedure's effects until it returns; return its value."""
        self.tracing = self.tracer.enabled
        conn = self.conn
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
                except SMTPError as exc:
                    raise self.refusal(exc) from None
                value = error = None
                try:
                    if isinstance(effect, p.Recv):
                        if self.out:
                            await self._flush()
                        value = await self._read_reply(effect.wait, size)
                    elif isinstance(effect, p.Fill):
                        if self.out:
                            await self._flush()
                        if conn.replies_ready < effect.count and not conn.stalled:
                            await self._fill(effect.count, effect.wait, size)
                    elif isinstance(effect, p.Send):
                        if self.tracing:
                            self.tracer.sent(effect.data, effect.secret)
                        self.out += effect.data
                        if len(self.out) >= FLUSH_AT:
                            await self._flush()
                    elif isinstance(effect, p.SendBody):
                        await self._send_body(effect.encoder, effect.content, hook)
                    else:
                        await self._flush()
                        if self.tls_upgrade is None:
                            raise TLSError("no TLS upgrade is configured", step="STARTTLS")
                        await self.tls_upgrade()
                        self.tracer.note("TLS started")
                except BaseException as exc:  # thrown into the procedure
                    error = self.explain(exc)
        except Usable as usable:
            raise usable.error from None
        except BaseException:
            self.broken()
            self.stream.abort()
            raise
        finally:
            proc.close()

    async def _flush(self) -> None:
        if self.out:
            data = bytes(self.out)
            self.out.clear()
            await self.stream.write(data, self.remaining(self.timeouts.data), "write")

    async def _read_reply(self, wait: p.Wait, size: int) -> Reply:
        conn = self.conn
        event = conn.next_event()
        if isinstance(event, Reply):  # already received (pipelined replies)
            return event
        limit = self.timeouts.for_wait(wait, size)
        step = self.next_step()
        while event is NEED_DATA:
            self._receive(await self.stream.read(self.remaining(limit), step))
            event = conn.next_event()
        if isinstance(event, ConnectionClosed):
            raise self.closed_error(event)
        return event

    async def _fill(self, count: int, wait: p.Wait, size: int) -> None:
        conn = self.conn
        if conn.replies_ready >= count or conn.stalled:
            return
        limit = self.timeouts.for_wait(wait, size)
        while conn.replies_ready < count and not conn.stalled:
            self._receive(await self.stream.read(self.remaining(limit), self.next_step()))

    async def _send_body(
        self, encoder: BodyEncoder, content: object, hook: Callable[[], object] | None
    ) -> None:
        self.committed = False
        if isinstance(content, bytes) and len(content) <= CHUNK:
            # A small message in memory: no async iteration needed.
            self._body_chunk(encoder, content)
        else:
            async for chunk in aiter_content(content):
                self._body_chunk(encoder, chunk)
                if len(self.out) >= FLUSH_AT:
                    await self._flush()
        if hook is not None:
            result = hook()
            if inspect.isawaitable(result):
                await result
        self.committed = True
        tail = encoder.finish()
        if self.tracing:
            self.tracer.sent_data(tail, end=True)
        self.out += tail


class AsyncClient(BaseClient):
    """An asyncio SMTP client for one server connection; the twin of :class:`Client`.

    ::

        async with AsyncClient("mail.example.com", 587, username="me", password=pw) as smtp:
            result = await smtp.send(msg)

    The arguments are :class:`Client`'s.  ``oauth2_token`` may also be an
    async callable.  Cancelling the task that awaits :meth:`send` before the
    end-of-message hook has run abandons the message (the server keeps
    nothing); after it, the send is completed first and the cancellation
    then takes effect.
    """

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        tls: TLSMode = "starttls",
        ssl_context: ssl.SSLContext | None = None,
        cafile: str | Path | None = None,
        server_hostname: str | None = None,
        tls_fingerprint: str | None = None,
        username: str | None = None,
        password: str | None = None,
        auth_mechanism: str | None = None,
        oauth2_token: str | Callable[[], Any] | None = None,
        allow_plaintext_auth: bool = False,
        timeout: float | None = 60.0,
        timeouts: Timeouts | None = None,
        local_hostname: str | None = None,
        source_address: tuple[str, int] | None = None,
        pipelining: bool = True,
        chunking: bool = True,
        transcript: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(
            host, port, tls=tls, ssl_context=ssl_context, cafile=cafile,
            server_hostname=server_hostname, tls_fingerprint=tls_fingerprint,
            username=username, password=password,
            auth_mechanism=auth_mechanism, oauth2_token=oauth2_token,
            allow_plaintext_auth=allow_plaintext_auth, timeout=timeout, timeouts=timeouts,
            local_hostname=local_hostname, source_address=source_address,
            pipelining=pipelining, chunking=chunking, transcript=transcript,
        )  # fmt: skip
        self._session: AsyncSession | None = None

    def tls_info(self) -> dict[str, object] | None:
        """TLS version, cipher and the server certificate (dict and DER), or None."""
        return self._session.stream.tls_info() if self._session is not None else None

    async def connect(self) -> Reply:
        """Connect, read the greeting, EHLO, STARTTLS and AUTH as configured."""
        if self.connected:
            raise RuntimeError("already connected")
        implicit = self.tls == "implicit"
        try:
            stream = await open_connection(
                self.host,
                self.port,
                self.timeouts.connect,
                ssl_context=self._context() if implicit else None,
                server_hostname=self.server_hostname or self.host,
                source_address=self.source_address,
            )
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise explain_tls_error(
                exc, self.host, self.port, implicit=True, server_hostname=self.server_hostname
            ) from exc
        self._tracer.note(f"connected to {self.host}:{self.port}")
        conn = SMTPConnection()
        session = AsyncSession(stream, conn, self.timeouts, self._tracer, self._starttls_upgrade)
        self._session, self._conn = session, conn
        try:
            if implicit:
                conn.implicit_tls()
                self._tracer.note("TLS started")
                self._check_pin(stream.tls_info())
            # socket.gethostname() reads a kernel value: it never blocks on DNS.
            name = self.local_hostname or ehlo_name(socket.gethostname(), stream.local_address)
            self.local_hostname = name
            try:
                reply = await session.run(p.greet(conn, name))
            except Timeout as exc:
                raise _greeting_hint(exc, self) from None
            if self._wants_starttls(conn):
                reply = await session.run(p.starttls(conn, name))
            if self._username is not None:
                await self._login(session, conn)
        except BaseException:
            stream.abort()
            self._session = self._conn = None
            raise
        self.ehlo_reply = reply
        return reply

    async def _login(self, session: AsyncSession, conn: SMTPConnection) -> None:
        # See Client._login: the provider (sync or async) is asked again once.
        provider = self._oauth2_token if callable(self._oauth2_token) else None
        for attempt in (1, 2):
            token = provider() if provider is not None else self._oauth2_token
            if inspect.isawaitable(token):
                token = await token
            mechanism = self._mechanism(conn, self._check_token(token))
            try:
                await session.run(p.authenticate(conn, mechanism))
                return
            except AuthenticationError:
                if attempt == 2 or provider is None or not self.connected:
                    raise

    async def _starttls_upgrade(self) -> None:
        assert self._session is not None
        try:
            await self._session.stream.start_tls(
                self._context(), self.server_hostname or self.host, self.timeouts.command
            )
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise explain_tls_error(
                exc, self.host, self.port, implicit=False, server_hostname=self.server_hostname
            ) from exc
        except OSError as exc:
            raise TLSError(
                f"TLS handshake with {self.host}:{self.port} failed: {exc}", step="TLS"
            ) from exc
        self._check_pin(self.tls_info())

    def _require(self) -> AsyncSession:
        if self._session is None or not self.connected:
            raise RuntimeError("not connected: use 'async with AsyncClient(...)' or connect()")
        return self._session

    async def send(
        self,
        message: object,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        mail_options: Mapping[str, str | None] | None = None,
        rcpt_options: Mapping[str, str | None] | None = None,
        end_of_message: Callable[[], object] | None = None,
        deadline: float | None = None,
    ) -> SendResult:
        """Send one message; see :meth:`Client.send`.  Also takes async iterables."""
        prepared = self._prepare(message, sender, recipients, mail_options, rcpt_options)
        session = self._require()
        session.start_deadline(deadline if deadline is not None else self.timeouts.total)
        inner = asyncio.ensure_future(
            session.run(
                self._transaction(session.conn, prepared),
                size=prepared.envelope.size or 0,
                hook=end_of_message,
            )
        )
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            # Before the commit the message is abandoned; after it, the send is
            # finished first (Racket: a break after the hook "probably will not"
            # cancel), then the cancellation goes on.
            if not session.committed:
                inner.cancel()
            try:
                await inner
            except BaseException:
                pass
            raise
        finally:
            session.deadline = None

    async def send_many(
        self, messages: Iterable[object], *, window: int = 8
    ) -> AsyncIterator[SendResult | BaseException]:
        """Send several messages over this connection, yielding one outcome each, in order.

        See :meth:`Client.send_many`.  Messages are pipelined in runs of
        :data:`BATCH` so outcomes stream out while later messages are sent.
        """
        self._require()
        items = self._prepared_items(enumerate(messages))
        broken: BaseException | None = None
        while run := list(itertools.islice(items, BATCH)):
            outcomes: dict[int, SendResult | BaseException] = {}
            if broken is not None:
                outcomes.update((i, not_sent(broken)) for i, _ in run)
            else:
                pipelined = self._pipelines()
                broken = await self._send_run(run, outcomes, window)
                redo = self._pipelining_fallback(broken, pipelined, run, outcomes)
                if redo is not None:
                    try:
                        self.close()
                        await self.connect()
                    except (SMTPError, OSError) as exc:
                        broken = exc
                    else:
                        broken = await self._send_run(redo, outcomes, window)
            for index, _ in run:
                yield outcomes[index]

    async def _send_run(
        self,
        run: list[tuple[int, PreparedMessage | BaseException]],
        outcomes: dict[int, SendResult | BaseException],
        window: int,
    ) -> BaseException | None:
        """Send one run of messages; returns the error that broke the connection, if any."""
        session = self._require()
        try:
            if self._pipelines():
                await session.run(
                    send_batch(
                        session.conn, iter(run), outcomes.__setitem__,
                        chunking=self.chunking, window=window,
                    )
                )  # fmt: skip
            else:
                for index, item in run:
                    outcomes[index] = (
                        item
                        if isinstance(item, BaseException)
                        else await self._send_one(session, item)
                    )
        except (SMTPError, OSError) as exc:
            for index, _ in run:
                outcomes.setdefault(index, not_sent(exc))
            return exc
        return None

    async def _send_one(
        self, session: AsyncSession, prepared: PreparedMessage
    ) -> SendResult | SMTPError:
        try:
            return await session.run(
                self._transaction(session.conn, prepared),
                size=prepared.envelope.size or 0,
            )
        except SMTPError as exc:
            if not self.connected:
                raise
            return exc

    async def noop(self) -> Reply:
        """NOOP: checks that the session is alive."""
        session = self._require()
        return await session.run(_simple(session.conn, Noop()))

    async def rset(self) -> Reply | None:
        session = self._require()
        return await session.run(p.reset(session.conn))

    async def quit(self) -> Reply | None:
        """Send QUIT (errors ignored) and close the connection."""
        session = self._session
        if session is None:
            return None
        reply = None
        try:
            if self.connected:
                reply = await session.run(p.quit(session.conn))
        except (SMTPError, OSError) as exc:
            logger.debug("QUIT failed (ignored): %s", exc)
        finally:
            self.close()
        return reply

    def close(self) -> None:
        """Close the connection without QUIT."""
        if self._session is not None:
            self._session.stream.close()
            self._session = self._conn = None

    async def __aenter__(self) -> AsyncClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None or isinstance(exc, SMTPError):
            await self.quit()
        else:
            self.close()
