"""The synchronous SMTP client: a thin driver over the sans-IO core."""

from __future__ import annotations

import itertools
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, TypeVar

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
from ._driver import FLUSH_AT, DriverBase, Usable, iter_content, not_sent
from ._net.sync import SocketStream, open_socket
from ._net.tls import explain_tls_error
from .errors import (
    AuthenticationError,
    CancelledSend,
    SMTPError,
    Timeout,
    TLSError,
)
from .trace import Tracer

__all__ = ["CancelHandle", "Client", "Session", "TLSMode"]

T = TypeVar("T")

logger = logging.getLogger("postwire")

#: Messages pipelined per run by ``send_many`` (outcomes are collected between runs).
BATCH = 64


class Stream(Protocol):
    """What the sync driver needs from a connection (see :mod:`postwire._net.sync`)."""

    peer: str

    @property
    def local_address(self) -> str | None: ...
    def read(self, timeout: float | None, step: str) -> bytes: ...
    def write(
        self, data: bytes | bytearray | memoryview, timeout: float | None, step: str
    ) -> None: ...
    def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> None: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...


class CancelHandle:
    """Cancels a send from another thread, as Racket's ``break-thread`` does.

    ``cancel()`` aborts the connection at once if the message's
    end-of-message hook has not run yet: the server never sees the final
    ``.`` and keeps nothing.  Once the hook has run, ``cancel()`` returns
    ``False`` and the send completes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stream: Stream | None = None
        self._cancelled = False
        self._committed = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> bool:
        """Cancel if still possible; returns whether the send was cancelled."""
        with self._lock:
            if self._committed:
                return False
            self._cancelled = True
            stream = self._stream
        if stream is not None:
            stream.abort()
        return True

    def _attach(self, stream: Stream) -> None:
        with self._lock:
            self._stream = stream
            cancelled = self._cancelled
        if cancelled:
            stream.abort()

    def _commit(self) -> None:
        """Called right after the end-of-message hook returned."""
        with self._lock:
            self._check()
            self._committed = True

    def _check(self) -> None:
        if self._cancelled:
            raise CancelledSend("send cancelled before the end of the message", step="DATA")


class Session(DriverBase):
    """Runs core procedures over one blocking stream (the sync driver)."""

    def __init__(
        self,
        stream: Stream,
        conn: SMTPConnection,
        timeouts: Timeouts,
        tracer: Tracer,
        tls_upgrade: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(conn, timeouts, tracer)
        self.stream = stream
        self.tls_upgrade = tls_upgrade

    def run(
        self,
        proc: Generator[p.Effect, Reply | None, T],
        *,
        size: int = 0,
        hook: Callable[[], object] | None = None,
        cancel: CancelHandle | None = None,
    ) -> T:
        """Perform the procedure's effects until it returns; return its value."""
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
                except SMTPError as exc:
                    raise self.refusal(exc) from None
                value = error = None
                try:
                    if isinstance(effect, p.Recv):
                        self._flush()
                        value = self._read_reply(effect.wait, size)
                    elif isinstance(effect, p.Fill):
                        self._flush()
                        self._fill(effect.count, effect.wait, size)
                    elif isinstance(effect, p.Send):
                        if self.tracing:
                            self.tracer.sent(effect.data, effect.secret)
                        self.out += effect.data
                        if len(self.out) >= FLUSH_AT:
                            self._flush()
                    elif isinstance(effect, p.SendBody):
                        self._send_body(effect.encoder, effect.content, hook, cancel)
                    else:
                        self._flush()
                        self._upgrade()
                except BaseException as exc:  # thrown into the procedure
                    error = self.explain(exc)
        except Usable as usable:
            raise usable.error from None
        except BaseException:
            self.broken()
            self.stream.close()
            raise
        finally:
            proc.close()

    def _flush(self) -> None:
        if self.out:
            try:
                # sendall() is done with the buffer when it returns: no copy needed.
                self.stream.write(self.out, self.remaining(self.timeouts.data), "write")
            finally:
                self.out.clear()

    def _read_reply(self, wait: p.Wait, size: int) -> Reply:
        conn = self.conn
        event = conn.next_event()
        if isinstance(event, Reply):  # already received (pipelined replies)
            return event
        limit = self.timeouts.for_wait(wait, size)
        step = self.next_step()
        while event is NEED_DATA:
            self._receive(self.stream.read(self.remaining(limit), step))
            event = conn.next_event()
        if isinstance(event, ConnectionClosed):
            raise self.closed_error(event)
        return event

    def _fill(self, count: int, wait: p.Wait, size: int) -> None:
        conn = self.conn
        if conn.replies_ready >= count or conn.stalled:
            return
        limit = self.timeouts.for_wait(wait, size)
        while conn.replies_ready < count and not conn.stalled:
            self._receive(self.stream.read(self.remaining(limit), self.next_step()))

    def _upgrade(self) -> None:
        if self.tls_upgrade is None:
            raise TLSError("STARTTLS accepted but no TLS upgrade is configured", step="STARTTLS")
        self.tls_upgrade()
        self.tracer.note("TLS started")

    def _send_body(
        self,
        encoder: BodyEncoder,
        content: object,
        hook: Callable[[], object] | None,
        cancel: CancelHandle | None,
    ) -> None:
        self.committed = False
        for chunk in iter_content(content):
            if cancel is not None:
                cancel._check()
            self._body_chunk(encoder, chunk)
            if len(self.out) >= FLUSH_AT:
                self._flush()
        # Racket's smtp-sending-end-of-message: after all content, before
        # the final "." (or BDAT LAST).  An exception from it cancels.
        if hook is not None:
            hook()
        if cancel is not None:
            cancel._commit()
        self.committed = True
        tail = encoder.finish()
        if self.tracing:
            self.tracer.sent_data(tail, end=True)
        self.out += tail


class Client(BaseClient):
    """A synchronous SMTP client for one server connection.

    Use it as a context manager: it connects (greeting, EHLO, STARTTLS,
    AUTH) on entry and sends QUIT on exit::

        with Client("mail.example.com", 587, username="me", password=pw) as smtp:
            result = smtp.send(msg)

    Args:
        host: the server's name or address.
        port: the server's port; defaults to 465 with ``tls="implicit"``,
            else 25.
        tls: ``"starttls"`` (default: STARTTLS is required, never plain text),
            ``"implicit"`` (TLS from the first byte, port 465),
            ``"opportunistic"`` (STARTTLS when offered, else plain text: ask
            for it by name only), ``"none"``.
        ssl_context: the context for TLS; default verifies the certificate.
        cafile: a CA file to trust instead of the system's (ignored with
            ``ssl_context``).
        server_hostname: the name to verify the certificate against (and
            to send in SNI) when it differs from ``host``.
        tls_fingerprint: pin the server certificate's SHA-256 fingerprint
            (hex, colons allowed); without ``cafile`` it replaces chain
            verification, for self-signed servers.
        username, password: credentials for AUTH.
        auth_mechanism: force one SASL mechanism instead of the strongest
            both sides support.
        oauth2_token: a bearer token, or a callable returning one (called
            right before AUTH), for XOAUTH2 / OAUTHBEARER.
        allow_plaintext_auth: allow credentials over an unencrypted
            connection (never the default).
        timeout: seconds for every network step (see ``timeouts``).
        timeouts: a :class:`~postwire.Timeouts` for each kind of step.
        local_hostname: the EHLO name; default: a valid name found without DNS.
        source_address: the local (host, port) to connect from.
        pipelining, chunking: use PIPELINING / CHUNKING when offered.
        transcript: a callable receiving each transcript line (AUTH hidden).
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
        oauth2_token: str | Callable[[], str] | None = None,
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
        self._session: Session | None = None

    # -- connection ------------------------------------------------------------

    def tls_info(self) -> dict[str, object] | None:
        """TLS version, cipher and the server certificate (dict and DER), or None."""
        if self._session is None:
            return None
        info = getattr(self._session.stream, "tls_info", None)
        return info() if callable(info) else None

    def connect(self) -> Reply:
        """Connect, read the greeting, EHLO, STARTTLS and AUTH as configured.

        Returns the last EHLO (or HELO) reply.
        """
        if self.connected:
            raise RuntimeError("already connected")
        sock = open_socket(self.host, self.port, self.timeouts.connect, self.source_address)
        stream = SocketStream(sock, f"{self.host}:{self.port}")
        self._tracer.note(f"connected to {self.host}:{self.port}")
        conn = SMTPConnection()
        session = Session(stream, conn, self.timeouts, self._tracer, self._starttls_upgrade)
        self._session, self._conn = session, conn
        try:
            if self.tls == "implicit":
                self._handshake(self.timeouts.connect, implicit=True)
                conn.implicit_tls()
                self._tracer.note("TLS started")
            name = self.local_hostname or ehlo_name(socket.gethostname(), stream.local_address)
            self.local_hostname = name
            try:
                reply = session.run(p.greet(conn, name))
            except Timeout as exc:
                raise _greeting_hint(exc, self) from None
            if self._wants_starttls(conn):
                reply = session.run(p.starttls(conn, name))
            if self._username is not None:
                self._login(session, conn)
        except BaseException:
            stream.close()
            self._session = self._conn = None
            raise
        self.ehlo_reply = reply
        return reply

    def _login(self, session: Session, conn: SMTPConnection) -> None:
        # A token provider is called right before AUTH, and once more if the
        # server refuses the token (it may have expired in between).
        provider = self._oauth2_token if callable(self._oauth2_token) else None
        for attempt in (1, 2):
            token = provider() if provider is not None else self._oauth2_token
            mechanism = self._mechanism(conn, self._check_token(token))
            try:
                session.run(p.authenticate(conn, mechanism))
                return
            except AuthenticationError:
                if attempt == 2 or provider is None or not self.connected:
                    raise

    def _handshake(self, timeout: float | None, *, implicit: bool) -> None:
        assert self._session is not None
        try:
            self._session.stream.start_tls(
                self._context(), self.server_hostname or self.host, timeout
            )
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise explain_tls_error(
                exc, self.host, self.port, implicit=implicit, server_hostname=self.server_hostname
            ) from exc
        except OSError as exc:
            raise TLSError(
                f"TLS handshake with {self.host}:{self.port} failed: {exc}", step="TLS"
            ) from exc
        self._check_pin(self.tls_info())

    def _starttls_upgrade(self) -> None:
        self._handshake(self.timeouts.command, implicit=False)

    def _require(self) -> Session:
        if self._session is None or not self.connected:
            raise RuntimeError("not connected: use 'with Client(...)' or call connect()")
        return self._session

    # -- commands --------------------------------------------------------------

    def send(
        self,
        message: object,
        *,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        mail_options: Mapping[str, str | None] | None = None,
        rcpt_options: Mapping[str, str | None] | None = None,
        end_of_message: Callable[[], object] | None = None,
        cancel: CancelHandle | None = None,
        deadline: float | None = None,
    ) -> SendResult:
        """Send one message; returns the accepted and refused recipients.

        ``message`` is an :class:`email.message.EmailMessage` (its envelope
        comes from its headers and its Bcc fields are not sent), or bytes /
        a binary file / an iterable of bytes with CRLF lines, and then
        ``sender`` and ``recipients`` are required.  Raises
        :class:`~postwire.RecipientsRefused` when no recipient is accepted,
        and ``ValueError`` for bad input before anything is sent.

        ``end_of_message`` runs after the content and before the final
        ``.``; ``cancel`` lets another thread cancel the send until then.
        ``deadline`` bounds the whole send in seconds.
        """
        prepared = self._prepare(message, sender, recipients, mail_options, rcpt_options)
        session = self._require()
        if cancel is not None:
            cancel._attach(session.stream)
        session.start_deadline(deadline if deadline is not None else self.timeouts.total)
        try:
            return session.run(
                self._transaction(session.conn, prepared),
                size=prepared.envelope.size or 0,
                hook=end_of_message,
                cancel=cancel,
            )
        except (OSError, SMTPError) as exc:
            if cancel is not None and cancel.cancelled:
                raise CancelledSend(
                    "send cancelled before the end of the message: nothing was delivered",
                    step="DATA",
                ) from exc
            raise
        finally:
            session.deadline = None

    def send_many(
        self, messages: Iterable[object], *, window: int = 8
    ) -> list[SendResult | BaseException]:
        """Send several messages over this connection; one outcome per message, in order.

        Each item is an ``EmailMessage`` or a ``(message, sender,
        recipients)`` tuple.  With PIPELINING the messages are pipelined
        (one round trip per message; with CHUNKING too, up to ``window``
        messages in flight).  A refused message does not stop the others; a
        broken connection does, and the messages not sent get its error.
        """
        self._require()
        items = self._prepared_items(enumerate(messages))
        outcomes: dict[int, SendResult | BaseException] = {}
        broken: BaseException | None = None
        # Runs of BATCH messages, as AsyncClient.send_many does.
        while run := list(itertools.islice(items, BATCH)):
            if broken is not None:
                outcomes.update((i, not_sent(broken)) for i, _ in run)
                continue
            pipelined = self._pipelines()
            broken = self._send_run(run, outcomes, window)
            redo = self._pipelining_fallback(broken, pipelined, run, outcomes)
            if redo is not None:
                try:
                    self.close()
                    self.connect()
                except (SMTPError, OSError) as exc:
                    broken = exc
                else:
                    broken = self._send_run(redo, outcomes, window)
        return [outcomes[i] for i in range(len(outcomes))]

    def _send_run(
        self,
        run: list[tuple[int, PreparedMessage | BaseException]],
        outcomes: dict[int, SendResult | BaseException],
        window: int,
    ) -> BaseException | None:
        """Send one run of messages; returns the error that broke the connection, if any."""
        session = self._require()
        try:
            if self._pipelines():
                session.run(
                    send_batch(
                        session.conn, iter(run), outcomes.__setitem__,
                        chunking=self.chunking, window=window,
                    )
                )  # fmt: skip
            else:
                for index, item in run:
                    outcomes[index] = (
                        item if isinstance(item, BaseException) else self._send_one(session, item)
                    )
        except (SMTPError, OSError) as exc:
            for index, _ in run:
                outcomes.setdefault(index, not_sent(exc))
            return exc
        return None

    def _send_one(self, session: Session, prepared: PreparedMessage) -> SendResult | SMTPError:
        """One transaction; a refusal is returned, a broken connection raised."""
        try:
            return session.run(
                self._transaction(session.conn, prepared),
                size=prepared.envelope.size or 0,
            )
        except SMTPError as exc:
            if not self.connected:
                raise
            return exc

    def noop(self) -> Reply:
        """NOOP: checks that the session is alive."""
        session = self._require()
        return session.run(_simple(session.conn, Noop()))

    def rset(self) -> Reply | None:
        session = self._require()
        return session.run(p.reset(session.conn))

    def quit(self) -> Reply | None:
        """Send QUIT (errors ignored) and close the connection."""
        session = self._session
        if session is None:
            return None
        reply = None
        try:
            if self.connected:
                reply = session.run(p.quit(session.conn))
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

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None or isinstance(exc, SMTPError):
            self.quit()
        else:
            self.close()


def _simple(conn: SMTPConnection, command: Noop) -> Generator[p.Effect, Reply | None, Reply]:
    yield p.Send(conn.send(command))
    reply = yield p.Recv()
    assert reply is not None
    return reply


def _greeting_hint(exc: Timeout, client: BaseClient) -> Timeout:
    if exc.step != "greeting" or client.tls == "implicit":
        return exc
    return Timeout(
        f"{exc} (if {client.host}:{client.port} is an implicit-TLS port such as 465, "
        "use tls='implicit' (CLI: --tls implicit))",
        step="greeting",
    )
