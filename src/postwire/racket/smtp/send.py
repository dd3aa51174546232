"""Racket's ``smtp-send-message`` and ``smtp-send-message*`` on postwire's core.

The arguments are checked before anything reaches the wire, then one
:class:`_SendRequest` runs on the sync driver (:class:`~postwire.client._sync.driver.Driver`):
greeting, EHLO, optional STARTTLS, optional AUTH, the transaction with the
end-of-message hook before the final ``.``, QUIT.  See :mod:`postwire.smtp`
for the fixes over Racket and how cancellation works.  Racket's ``smtp^``
signature and ``smtp@`` unit are here too: they bundle these functions.
The public names are listed once, in :mod:`postwire.racket.smtp`.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..._core import procedures as p
from ..._core.commands import Ehlo
from ..._core.connection import SMTPConnection
from ..._core.envelope import Envelope, SendResult
from ..._core.names import ehlo_name
from ..._core.sasl import Mechanism, Plain, XOAuth2, check_credential
from ..._core.timeouts import Timeouts
from ..._core.transaction import transaction
from ..._net.ports import PortsStream, TLSPort
from ..._net.sync import SocketStream, open_socket
from ..._net.tls import explain_tls_error
from ...client import CancelHandle
from ...client._sync.driver import Driver, Stream
from ...client.transcript import Tracer
from ...errors import CancelledSend, SMTPError
from ..parameters import Parameter
from .ports import current_server, stream_for


def _thunk_guard(value: object) -> Callable[[], object]:
    ok = callable(value)
    if ok:
        try:
            inspect.signature(value).bind()  # type: ignore[arg-type]
        except TypeError:
            ok = False
        except ValueError:  # builtins without a signature: trust callable()
            ok = True
    if not ok:
        raise TypeError(
            f"smtp_sending_end_of_message: expected argument of type <thunk>; given: {value!r}"
        )
    return value  # type: ignore[return-value]


def _server_guard(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"smtp_sending_server: expected a str or None; given: {value!r}")
    Ehlo(value)  # raises ValueError for CR/LF, spaces, empty
    return value


#: Called after the message content and before the final ``.``: until it
#: returns, an exception (or a cancel) abandons the message.
smtp_sending_end_of_message: Parameter[Callable[[], object]] = Parameter(
    "smtp_sending_end_of_message", lambda: None, _thunk_guard
)

#: The EHLO name.  ``None`` (the default) picks a valid RFC 5321 §4.1.4 name:
#: the host's FQDN, or an address literal of the local socket (Racket sends
#: ``localhost``, which relays reject).
smtp_sending_server: Parameter[str | None] = Parameter("smtp_sending_server", None, _server_guard)


def _check_header(header: str | bytes) -> bytes:
    if isinstance(header, str):
        data = header.encode("utf-8")
    elif isinstance(header, (bytes, bytearray)):
        data = bytes(header)
    else:
        raise TypeError(f"smtp_send_message: header must be a str, not {type(header).__name__}")
    if not data.endswith(b"\r\n"):
        raise ValueError(
            "smtp_send_message: header must be CRLF lines ending with an empty line "
            f"(as net/head builds it), got {header[-20:]!r}"
        )
    lines = data.split(b"\r\n")
    if any(b"\r" in line or b"\n" in line for line in lines):
        raise ValueError("smtp_send_message: header has a bare CR or LF; use CRLF line endings")
    if data != b"\r\n" and not data.endswith(b"\r\n\r\n"):
        raise ValueError(
            "smtp_send_message: header must end with an empty line (\\r\\n\\r\\n), "
            "or the first message line would join the header"
        )
    return data


def _line_bytes(line: object) -> bytes:
    if isinstance(line, str):
        data = line.encode("utf-8")
    elif isinstance(line, (bytes, bytearray)):
        data = bytes(line)
    else:
        raise TypeError(
            f"smtp_send_message: message lines must be str or bytes, not {type(line).__name__}"
        )
    if b"\r" in data or b"\n" in data or b"\0" in data:
        raise ValueError(
            f"smtp_send_message: a message line contains CR, LF or NUL: {line!r}; "
            "pass one line per element, without line endings"
        )
    return data


def _content(header: bytes, lines: Iterable[str | bytes]) -> Iterator[bytes]:
    yield header
    for line in lines:
        yield _line_bytes(line) + b"\r\n"


def _check_addresses(from_: object, to: object) -> tuple[str, tuple[str, ...]]:
    if not isinstance(from_, str):
        raise TypeError(f"smtp_send_message: from_ must be a str, not {type(from_).__name__}")
    if isinstance(to, str) or not isinstance(to, Iterable):
        raise TypeError("smtp_send_message: to must be a list of addresses")
    rcpts = tuple(to)
    for r in rcpts:
        if not isinstance(r, str):
            raise TypeError(f"smtp_send_message: recipients must be str, not {type(r).__name__}")
    return from_, rcpts


def smtp_send_message(
    server_address: str,
    from_: str,
    to: Sequence[str],
    header: str | bytes,
    message: Iterable[str | bytes],
    port_no: int = 25,
    *,
    auth_user: str | None = None,
    auth_passwd: str | None = None,
    xoauth2: bool = False,
    tcp_connect: Callable[[str, int], Any] | None = None,
    tls_encode: Callable[..., tuple[Any, Any]] | None = None,
    timeout: float | None = 60.0,
    allow_plaintext_auth: bool = False,
    cancel: CancelHandle | None = None,
) -> SendResult:
    """Send one message, as Racket's ``smtp-send-message``.

    ``header`` is a header string as :mod:`postwire.head` builds it (CRLF
    lines and a final empty line); ``message`` is the body, one line per
    element without line endings.  ``tcp_connect(host, port)`` may return a
    connected socket or a ``(reader, writer)`` pair (use :func:`ssl_connect`
    for implicit TLS); ``tls_encode`` turns on STARTTLS (use
    :func:`ports_to_ssl_ports`).  Credentials are only sent over TLS unless
    ``allow_plaintext_auth`` is true.
    """
    sender, rcpts = _check_addresses(from_, to)
    if not rcpts:
        raise ValueError("smtp_send_message: no receivers")
    head = _check_header(header)
    if isinstance(message, (list, tuple)):
        for line in message:
            _line_bytes(line)
    if auth_user is not None and auth_passwd is None:
        raise ValueError("smtp_send_message: auth_passwd is None; a password (or token) is needed")
    # Everything is checked before connecting: the envelope (CR/LF), the credentials.
    request = _SendRequest(
        envelope=Envelope(sender, rcpts, None, False),
        header=head,
        message=message,
        auth_user=auth_user,
        auth_passwd=auth_passwd,
        xoauth2=xoauth2,
        tls_encode=tls_encode,
        timeouts=Timeouts.uniform(timeout),
        hook=smtp_sending_end_of_message(),
        cancel=cancel,
        allow_plaintext_auth=allow_plaintext_auth,
    )
    connect = tcp_connect or (lambda host, port: open_socket(host, port, timeout))
    token = current_server.set(server_address)
    try:
        ports = connect(server_address, port_no)
        return _run(stream_for(ports, f"{server_address}:{port_no}"), request)
    finally:
        current_server.reset(token)


def smtp_send_message_on_ports(
    reader: Any,
    writer: Any,
    from_: str,
    to: Sequence[str],
    header: str | bytes,
    message: Iterable[str | bytes],
    auth_user: str | None,
    auth_passwd: str | None,
    tls_encode: Callable[..., tuple[Any, Any]] | None,
    *,
    xoauth2: bool = False,
    timeout: float | None = 60.0,
    allow_plaintext_auth: bool = False,
    cancel: CancelHandle | None = None,
) -> SendResult:
    """Racket's ``smtp-send-message*``: the same exchange over connected ports.

    Unlike Racket, an empty ``to`` is refused here too.
    """
    sender, rcpts = _check_addresses(from_, to)
    if not rcpts:
        raise ValueError("smtp_send_message_on_ports: no receivers")
    head = _check_header(header)
    envelope = Envelope(sender, rcpts, None, False)
    stream = PortsStream(reader, writer) if reader is not writer else stream_for(reader, "")
    request = _SendRequest(
        envelope=envelope,
        header=head,
        message=message,
        auth_user=auth_user,
        auth_passwd=auth_passwd,
        xoauth2=xoauth2,
        tls_encode=tls_encode,
        timeouts=Timeouts.uniform(timeout),
        hook=smtp_sending_end_of_message(),
        cancel=cancel,
        allow_plaintext_auth=allow_plaintext_auth,
    )
    return _run(stream, request)


@dataclass(frozen=True)
class _SendRequest:
    """One send, its arguments checked: everything :func:`_run` needs besides the stream."""

    envelope: Envelope
    header: bytes
    message: Iterable[str | bytes]
    auth_user: str | None
    auth_passwd: str | None
    xoauth2: bool
    tls_encode: Callable[..., tuple[Any, Any]] | None
    timeouts: Timeouts
    hook: Callable[[], object]
    cancel: CancelHandle | None
    allow_plaintext_auth: bool

    def __post_init__(self) -> None:
        # RFC 4013 §2.3: no control character in a credential; refused before any I/O.
        check_credential(self.auth_user, "auth_user")
        check_credential(self.auth_passwd, "auth_passwd")


def _run(stream: Stream, request: _SendRequest) -> SendResult:
    conn = SMTPConnection()
    tls_encode = request.tls_encode
    cancel = request.cancel

    def upgrade() -> None:
        assert tls_encode is not None
        reader, writer = _ports_of(stream)
        try:
            new_reader, new_writer = tls_encode(
                reader, writer, mode="connect", encrypt="tls", close_original=True
            )
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise explain_tls_error(
                exc, stream.peer, 0, implicit=False, server_hostname=None
            ) from exc
        _replace_ports(stream, new_reader, new_writer)

    session = Driver(stream, conn, request.timeouts, Tracer(), upgrade if tls_encode else None)
    if cancel is not None:
        cancel._attach(stream)
    name = smtp_sending_server() or ehlo_name(socket.gethostname(), stream.local_address)
    try:
        session.run(p.greet(conn, name))
        if tls_encode is not None:
            session.run(p.starttls(conn, name))
        if isinstance(stream, PortsStream) and isinstance(stream.reader, (ssl.SSLSocket, TLSPort)):
            conn.implicit_tls()
        if request.auth_user is not None:
            assert request.auth_passwd is not None
            p.check_credentials_protected(
                conn,
                allowed=request.allow_plaintext_auth,
                advice="smtp_send_message: pass tls_encode=ports_to_ssl_ports or "
                "tcp_connect=ssl_connect (or allow_plaintext_auth=True)",
            )
            # Racket sends AUTH PLAIN (or XOAUTH2) with the initial response,
            # whatever the server advertises; we do the same (UTF-8, RFC 4616).
            user, secret = request.auth_user, request.auth_passwd
            mech: Mechanism = (
                XOAuth2(user, secret) if request.xoauth2 else Plain(user, secret, authzid=user)
            )
            session.run(p.authenticate(conn, mech))
        result = session.run(
            transaction(
                conn,
                request.envelope,
                _content(request.header, request.message),
                pipelining=False,
                chunking=False,
                require_all=True,
            ),
            hook=request.hook,
            cancel=cancel,
        )
    except SMTPError as exc:
        if cancel is not None and cancel.cancelled:
            stream.close()
            raise CancelledSend(
                "send cancelled before the end of the message: nothing was delivered",
                step="DATA",
            ) from exc
        _quit_quietly(session)
        raise
    except BaseException:
        # A local error, a cancellation or an interrupt: close at once,
        # without the final "." (Racket closes both ports and re-raises).
        stream.close()
        raise
    _quit_quietly(session)
    return result


def _quit_quietly(session: Driver) -> None:
    try:
        if session.conn.state.name not in ("CLOSED", "ERROR"):
            session.run(p.quit(session.conn))
    except (SMTPError, OSError):
        pass  # Racket: "error after send" is only logged
    finally:
        session.stream.close()


def _ports_of(stream: Stream) -> tuple[Any, Any]:
    if isinstance(stream, PortsStream):
        return stream.reader, stream.writer
    assert isinstance(stream, SocketStream)
    return stream.sock, stream.sock


def _replace_ports(stream: Stream, reader: Any, writer: Any) -> None:
    if isinstance(stream, PortsStream):
        stream.replace(reader, writer)
    else:
        assert isinstance(stream, SocketStream)
        if reader is not writer or not isinstance(reader, socket.socket):
            raise TypeError("tls_encode on a socket must return the same TLS socket twice")
        stream.sock = reader


async def smtp_send_message_async(*args: Any, **kwargs: Any) -> SendResult:
    """:func:`smtp_send_message` in a worker thread, cancellable as a task.

    Cancelling the awaiting task before the end-of-message hook has run
    aborts the connection without the final ``.``; after it, the send
    completes (Racket: "breaking ... probably will not" cancel).
    """
    handle = CancelHandle()
    kwargs["cancel"] = handle
    ctx = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, lambda: ctx.run(smtp_send_message, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if handle.cancel():
            try:
                await future
            except BaseException:
                pass
            raise
        return await future


class SmtpSignature(Protocol):
    """Racket's ``smtp^`` signature: the names a net/smtp unit provides."""

    @property
    def smtp_sending_server(self) -> Parameter[str | None]: ...
    @property
    def smtp_sending_end_of_message(self) -> Parameter[Callable[[], object]]: ...
    def smtp_send_message(
        self,
        server_address: str,
        from_: str,
        to: Sequence[str],
        header: str | bytes,
        message: Iterable[str | bytes],
        port_no: int = 25,
        **kwargs: Any,
    ) -> SendResult: ...
    def smtp_send_message_on_ports(self, *args: Any, **kwargs: Any) -> SendResult: ...


class _SmtpUnit:
    """``smtp@``: the functions of :mod:`postwire.smtp` as one object."""

    smtp_sending_server = smtp_sending_server
    smtp_sending_end_of_message = smtp_sending_end_of_message

    def smtp_send_message(self, *args: Any, **kwargs: Any) -> SendResult:
        return smtp_send_message(*args, **kwargs)

    def smtp_send_message_on_ports(self, *args: Any, **kwargs: Any) -> SendResult:
        return smtp_send_message_on_ports(*args, **kwargs)


#: Racket's ``smtp@`` unit: an object with the ``smtp^`` names.
smtp_unit: SmtpSignature = _SmtpUnit()
