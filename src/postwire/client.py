"""The synchronous SMTP client: a thin driver over the sans-IO core."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, TypeVar

from ._core import procedures as p
from ._core.body import BodyEncoder
from ._core.commands import params_from
from ._core.connection import NEED_DATA, ConnectionClosed, SMTPConnection
from ._core.envelope import SendResult
from ._core.extensions import Extensions
from ._core.message import prepare_message
from ._core.names import ehlo_name
from ._core.reply import Reply
from ._core.sasl import choose_mechanism
from ._core.state import State
from ._core.timeouts import Timeouts
from ._net.sync import SocketStream, open_socket
from ._net.tls import explain_tls_error, make_context
from .errors import (
    CancelledSend,
    ExtensionNotSupported,
    PossiblyDelivered,
    RecipientsRefused,
    ReplyError,
    ServerDisconnected,
    SMTPError,
    Timeout,
    TLSError,
    TLSRequired,
)
from .trace import Tracer

__all__ = ["CancelHandle", "Client", "TLSMode"]

T = TypeVar("T")
TLSMode = Literal["starttls", "implicit", "opportunistic", "none"]
_TLS_MODES = ("starttls", "implicit", "opportunistic", "none")
_CHUNK = 1 << 20
_FLUSH_AT = 1 << 20

logger = logging.getLogger("postwire")


class Stream(Protocol):
    """What the driver needs from a connection (see :mod:`postwire._net.sync`)."""

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
            if self._cancelled:
                raise CancelledSend("send cancelled before the end of the message", step="DATA")
            self._committed = True

    def _check(self) -> None:
        if self._cancelled:
            raise CancelledSend("send cancelled before the end of the message", step="DATA")


class _Usable(Exception):
    """Carries a refusal out of the driver loop without breaking the session."""

    def __init__(self, error: SMTPError) -> None:
        self.error = error


_DEAD = (State.CLOSED, State.ERROR)


class Session:
    """Runs core procedures over one stream (the sync driver)."""

    def __init__(
        self,
        stream: Stream,
        conn: SMTPConnection,
        timeouts: Timeouts,
        tracer: Tracer,
        tls_upgrade: Callable[[], None] | None = None,
    ) -> None:
        self.stream = stream
        self.conn = conn
        self.timeouts = timeouts
        self.tracer = tracer
        self.tls_upgrade = tls_upgrade
        self._out = bytearray()
        self._deadline: float | None = None
        self._data_end_sent = False

    # -- the driver loop -------------------------------------------------------

    def run(
        self,
        proc: Generator[p.Effect, Reply | None, T],
        *,
        content: object = None,
        size: int = 0,
        hook: Callable[[], object] | None = None,
        cancel: CancelHandle | None = None,
    ) -> T:
        value: Reply | None = None
        try:
            while True:
                try:
                    effect = proc.send(value)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                except (ReplyError, RecipientsRefused, ExtensionNotSupported) as exc:
                    # A refusal the procedure decided on.  If every command got its
                    # reply the session is consistent (RSET was sent) and stays usable.
                    if self.conn.pending or self.conn.state in _DEAD:
                        raise
                    raise _Usable(exc) from None
                value = None
                if isinstance(effect, p.Send):
                    self.tracer.sent(effect.data, effect.secret)
                    self._out += effect.data
                    if len(self._out) >= _FLUSH_AT:
                        self._flush()
                elif isinstance(effect, p.Recv):
                    self._flush()
                    value = self._read_reply(effect.wait, size)
                elif isinstance(effect, p.SendBody):
                    self._send_body(effect.encoder, content, hook, cancel)
                else:
                    self._flush()
                    self._upgrade()
        except _Usable as usable:
            raise usable.error from None
        except BaseException:
            self._broken()
            raise
        finally:
            proc.close()

    def _broken(self) -> None:
        # After a timeout, a cancellation or a broken connection a late reply
        # could pair with the wrong command: the connection is never reused.
        self.conn.reset_after_error()
        self._out.clear()
        self.stream.close()

    def _remaining(self, limit: float | None) -> float | None:
        if self._deadline is None:
            return limit
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise Timeout("the send took longer than its total deadline", step="send")
        return left if limit is None else min(limit, left)

    def _flush(self) -> None:
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            self.stream.write(data, self._remaining(self.timeouts.data), "write")

    def _read_reply(self, wait: p.Wait, size: int) -> Reply:
        conn = self.conn
        limit = self.timeouts.for_wait(wait, size)
        step = conn.pending[0].verb if conn.pending else "reply"
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                data = self.stream.read(self._remaining(limit), step)
                self.tracer.received_raw(data)
                conn.receive_data(data)
                continue
            if isinstance(event, ConnectionClosed):
                raise self._closed_error(event)
            assert isinstance(event, Reply)
            self.tracer.received(event)
            return event

    def _closed_error(self, event: ConnectionClosed) -> ServerDisconnected:
        verbs = [cmd.verb for cmd in event.pending]
        step = verbs[0] if verbs else "reply"
        if "end of data" in verbs or any(getattr(cmd, "last", False) for cmd in event.pending):
            return PossiblyDelivered(
                f"the server closed the connection after the end of the message and before "
                f"its reply: the message may have been delivered (waiting for: {', '.join(verbs)})",
                step="end of data",
            )
        return ServerDisconnected(
            f"the server closed the connection while waiting for the reply to {step}",
            step=step,
        )

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
        for chunk in _iter_content(content):
            if cancel is not None:
                cancel._check()
            data = encoder.feed(chunk)
            if data:
                self.tracer.sent_data(data)
                self._out += data
                if len(self._out) >= _FLUSH_AT:
                    self._flush()
        # Racket's smtp-sending-end-of-message: after all content, before
        # the final "." (or BDAT LAST).  An exception from it cancels.
        if hook is not None:
            hook()
        if cancel is not None:
            cancel._commit()
        tail = encoder.finish()
        self.tracer.sent_data(tail, end=True)
        self._out += tail


def _iter_content(content: object) -> Iterable[bytes]:
    if content is None:
        return
    if isinstance(content, bytes):
        if len(content) <= _CHUNK:
            yield content
        else:
            view = memoryview(content)
            for i in range(0, len(content), _CHUNK):
                yield bytes(view[i : i + _CHUNK])
        return
    read = getattr(content, "read", None)
    if read is not None:
        while True:
            chunk = read(_CHUNK)
            if not chunk:
                return
            if not isinstance(chunk, (bytes, bytearray)):
                raise TypeError("message file must be opened in binary mode ('rb')")
            yield bytes(chunk)
    if hasattr(content, "__aiter__"):
        raise TypeError("an async iterable can only be sent with AsyncClient")
    for chunk in content:  # type: ignore[attr-defined]
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"message chunks must be bytes, not {type(chunk).__name__}")
        yield bytes(chunk)


class Client:
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
        username, password: credentials for AUTH.
        auth_mechanism: force one SASL mechanism instead of the strongest
            both sides support.
        oauth2_token: a bearer token (or a callable returning one) for
            XOAUTH2 / OAUTHBEARER.
        allow_plaintext_auth: allow credentials over an unencrypted
            connection (never the default).
        timeout: seconds for every network step (see ``timeouts``).
        timeouts: a :class:`Timeouts` for each kind of step.
        local_hostname: the EHLO name; default: a valid name found without DNS.
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
        if tls not in _TLS_MODES:
            raise ValueError(f"tls must be one of {', '.join(_TLS_MODES)}, not {tls!r}")
        if not isinstance(host, str) or not host or any(ch in host for ch in "\r\n\0 "):
            raise ValueError(f"host must be a host name or address: {host!r}")
        if port is None:
            port = 465 if tls == "implicit" else 25
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError(f"port must be an int from 1 to 65535, not {port!r}")
        if password is not None and username is None:
            raise ValueError("password given without username")
        if username is not None and password is None and oauth2_token is None:
            raise ValueError("username given without password or oauth2_token")
        if local_hostname is not None:
            from ._core.commands import Ehlo

            Ehlo(local_hostname)  # validates
        self.host = host
        self.port = port
        self.tls: TLSMode = tls
        self._ssl_context = ssl_context
        self._cafile = cafile
        self.server_hostname = server_hostname
        self._username = username
        self._password = password
        self._auth_mechanism = auth_mechanism
        self._oauth2_token = oauth2_token
        self.allow_plaintext_auth = allow_plaintext_auth
        self.timeouts = timeouts if timeouts is not None else Timeouts.uniform(timeout)
        self.local_hostname = local_hostname
        self.source_address = source_address
        self.pipelining = pipelining
        self.chunking = chunking
        self._tracer = Tracer(transcript)
        self._session: Session | None = None
        self.ehlo_reply: Reply | None = None

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<Client {self.host}:{self.port} tls={self.tls} {state}>"

    # -- connection ------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._session is not None and self._session.conn.state not in _DEAD

    @property
    def extensions(self) -> Extensions:
        """What the server offers (after connecting)."""
        return self._session.conn.extensions if self._session else Extensions()

    @property
    def tls_active(self) -> bool:
        return self._session is not None and self._session.conn.tls_active

    def tls_info(self) -> dict[str, object] | None:
        """TLS version, cipher and the server certificate (dict and DER), or None."""
        if self._session is None:
            return None
        info = getattr(self._session.stream, "tls_info", None)
        return info() if callable(info) else None

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = make_context(self._cafile)
        return self._ssl_context

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
        self._session = session
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
                if exc.step == "greeting" and self.tls != "implicit":
                    raise Timeout(
                        f"{exc} (if {self.host}:{self.port} is an implicit-TLS port such as "
                        "465, use tls='implicit' (CLI: --tls implicit))",
                        step="greeting",
                    ) from None
                raise
            wants_tls = self.tls == "starttls" or (
                self.tls == "opportunistic" and conn.extensions.starttls
            )
            if wants_tls and not conn.tls_active:
                reply = session.run(p.starttls(conn, name))
            if self._username is not None:
                self._login(session)
        except BaseException:
            stream.close()
            self._session = None
            raise
        self.ehlo_reply = reply
        return reply

    def _handshake(self, timeout: float | None, *, implicit: bool) -> None:
        assert self._session is not None
        stream = self._session.stream
        sni = self.server_hostname or self.host
        try:
            stream.start_tls(self._context(), sni, timeout)
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise explain_tls_error(
                exc, self.host, self.port, implicit=implicit, server_hostname=self.server_hostname
            ) from exc
        except OSError as exc:
            raise TLSError(
                f"TLS handshake with {self.host}:{self.port} failed: {exc}", step="TLS"
            ) from exc

    def _starttls_upgrade(self) -> None:
        self._handshake(self.timeouts.command, implicit=False)

    def _login(self, session: Session) -> None:
        conn = session.conn
        if not conn.tls_active and not self.allow_plaintext_auth:
            raise TLSRequired(
                "refusing to send credentials over an unencrypted connection; use TLS "
                "(tls='starttls' or 'implicit') or pass allow_plaintext_auth=True",
                step="AUTH",
            )
        offered = conn.extensions.auth_mechanisms
        if not offered:
            raise ExtensionNotSupported(
                "credentials were given but the server offers no AUTH", step="AUTH"
            )
        token = self._oauth2_token() if callable(self._oauth2_token) else self._oauth2_token
        mech = choose_mechanism(
            offered,
            username=self._username or "",
            password=self._password,
            oauth2_token=token,
            preferred=self._auth_mechanism,
        )
        session.run(p.authenticate(conn, mech))

    def _require(self) -> Session:
        if self._session is None:
            raise RuntimeError("not connected: use 'with Client(...)' or call connect()")
        if not self.connected:
            raise ServerDisconnected("the connection is closed", step="send")
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
        :class:`RecipientsRefused` when no recipient is accepted, and
        ``ValueError`` for bad input before anything is sent.

        ``end_of_message`` runs after the content and before the final
        ``.``; ``cancel`` lets another thread cancel the send until then.
        ``deadline`` bounds the whole send in seconds.
        """
        prepared = prepare_message(
            message,
            sender=sender,
            recipients=recipients,
            mail_params=params_from(mail_options or {}),
            rcpt_params=params_from(rcpt_options or {}),
        )
        session = self._require()
        if cancel is not None:
            cancel._attach(session.stream)
        total = deadline if deadline is not None else self.timeouts.total
        session._deadline = time.monotonic() + total if total is not None else None
        try:
            return session.run(
                p.transaction(
                    session.conn,
                    prepared.envelope,
                    pipelining=self.pipelining,
                    chunking=self.chunking,
                ),
                content=prepared.content,
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
            session._deadline = None

    def noop(self) -> Reply:
        session = self._require()
        from ._core.commands import Noop

        def proc() -> Generator[p.Effect, Reply | None, Reply]:
            yield p.Send(session.conn.send(Noop()))
            reply = yield p.Recv()
            assert reply is not None
            return reply

        return session.run(proc())

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
            self._session = None

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
