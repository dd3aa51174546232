"""A local SMTP capture server for development and tests, built on aiosmtpd.

:class:`CaptureServer` listens on a loopback port, accepts every message and keeps it, byte for
byte, in memory (and optionally in a Maildir). It can offer STARTTLS or implicit TLS with a
throw-away CA made at start-up, and AUTH PLAIN, LOGIN and CRAM-MD5 against a user/password map.
It is not a relay and never delivers anything anywhere.

Needs the ``capture`` extra (``aiosmtpd``, ``cryptography``).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import itertools
import logging
import os
import re
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from . import certs as _certs

__all__ = ["DEFAULT_DATA_SIZE_LIMIT", "CaptureServer", "CapturedMessage", "TLSMode"]

log = logging.getLogger("postwire.capture")

TLSMode = Literal["starttls", "implicit", "none"]
DEFAULT_DATA_SIZE_LIMIT = 64 * 1024 * 1024

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]+")
_maildir_counter = itertools.count()


@dataclass(frozen=True)
class CapturedMessage:
    """One message as the capture server received it.

    ``data`` is the message content exactly as sent after DATA (CRLF line endings, dot-stuffing
    removed, RFC 5321 section 4.5.2). ``mail_from`` is ``""`` for the null reverse-path ``<>``.
    ``path`` is the Maildir file, when the server writes one.
    """

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: tuple[str, int] | None
    tls: bool
    auth_user: str | None
    received_at: datetime
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[str] = field(default_factory=list)
    path: Path | None = None

    def email(self) -> EmailMessage:
        """Parse :attr:`data` with the modern :mod:`email` policy."""
        msg = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(msg, EmailMessage)
        return msg

    @property
    def subject(self) -> str | None:
        """The decoded Subject header, or None when there is none (or it cannot be parsed)."""
        # Parse only the header block: the body may be tens of megabytes.
        end = self.data.find(b"\r\n\r\n")
        head = self.data if end < 0 else self.data[: end + 2]
        try:
            value = BytesParser(policy=policy.default).parsebytes(head, headersonly=True)["subject"]
        except Exception:  # a malformed header must not break logging
            return None
        return None if value is None else str(value)

    def summary(self) -> str:
        """One log line: time, envelope, size, TLS, AUTH user and subject."""
        when = self.received_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        to = ",".join(f"<{rcpt}>" for rcpt in self.rcpt_tos)
        subject = _CONTROL_CHARS.sub(" ", self.subject or "")
        subject = subject.replace("\\", "\\\\").replace('"', '\\"')
        return (
            f"{when} from=<{self.mail_from}> to={to} size={len(self.data)} "
            f'tls={"yes" if self.tls else "no"} auth={self.auth_user or "-"} subject="{subject}"'
        )


def _deliver_to_maildir(maildir: Path, data: bytes) -> Path:
    """Write ``data`` into ``maildir/tmp`` and rename it into ``maildir/new``.

    The rename makes delivery atomic: readers never see a partial file (Maildir format,
    https://cr.yp.to/proto/maildir.html). The bytes are written unchanged (CRLF kept).
    """
    now = time.time()
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    name = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_maildir_counter)}.{host}"
    tmp_path = maildir / "tmp" / name
    with open(tmp_path, "xb") as f:
        f.write(data)
    final = maildir / "new" / name
    os.replace(tmp_path, final)
    return final


class _Session(Session):
    # aiosmtpd 1.4.6 logs a deprecation warning each time it sets login_data (on every
    # successful AUTH); keep the value without the noise.
    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _CaptureSMTP(SMTP):
    """aiosmtpd's SMTP with a password map, CRAM-MD5 and our own "AUTH required" check."""

    def __init__(
        self,
        handler: _Handler,
        *,
        users: Mapping[str, str] | None,
        require_auth: bool,
        **kwargs: Any,
    ) -> None:
        self._users = dict(users) if users is not None else None
        self._require_auth = require_auth
        if users is None:
            kwargs["auth_exclude_mechanism"] = ["PLAIN", "LOGIN", "CRAM-MD5"]
        else:
            kwargs["authenticator"] = self._check_login_password
        super().__init__(handler, **kwargs)

    def _create_session(self) -> Session:
        return _Session(self.loop)

    def _password_of(self, user: bytes) -> bytes | None:
        if self._users is None:
            return None
        try:
            password = self._users.get(user.decode("utf-8"))
        except UnicodeDecodeError:
            return None
        return None if password is None else password.encode("utf-8")

    def _check_login_password(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        # Used by aiosmtpd's built-in PLAIN (RFC 4616) and LOGIN mechanisms.
        assert isinstance(data, LoginPassword)
        expected = self._password_of(data.login)
        if expected is not None and hmac.compare_digest(expected, data.password):
            return AuthResult(success=True, auth_data=data.login.decode("utf-8"))
        # handled=False makes smtp_AUTH answer 535 itself.
        return AuthResult(success=False, handled=False)

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        """CRAM-MD5 (RFC 2195); aiosmtpd maps the method name to the mechanism ``CRAM-MD5``."""
        if len(args) > 1:  # RFC 2195 has no initial response
            await self.push("501 5.5.4 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = f"<{secrets.randbelow(10**12)}.{int(time.time())}@{self.hostname}>".encode()
        response = await self.challenge_auth(challenge)
        if not isinstance(response, bytes):  # "*" or bad base64: already answered with 501
            return AuthResult(success=False, handled=True)
        user, _, digest = response.rpartition(b" ")
        password = self._password_of(user)
        if password is not None:
            wanted = hmac.new(password, challenge, "md5").hexdigest().encode("ascii")
            if hmac.compare_digest(wanted, digest.lower()):
                return AuthResult(success=True, auth_data=user.decode("utf-8"))
        # Must be handled=False so that 535 is sent; otherwise the client waits forever.
        return AuthResult(success=False, handled=False)

    async def check_auth_needed(self, caller_method: str) -> bool:
        # Done here instead of aiosmtpd's auth_required, which warns whenever TLS is not
        # required for AUTH (normal for a plain-text development server).
        assert self.session is not None
        if self._require_auth and not self.session.authenticated:
            await self.push("530 5.7.0 Authentication required")
            return True
        return False


class _Handler:
    """aiosmtpd handler hooks; runs in the server's event-loop thread."""

    def __init__(self, capture: CaptureServer, *, advertise_auth: bool) -> None:
        self._capture = capture
        self._advertise_auth = advertise_auth

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname  # the 5-argument hook must set it (aiosmtpd docs)
        if self._advertise_auth:
            return responses
        return [line for line in responses if not line.startswith("250-AUTH")]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert envelope.original_content is not None and envelope.mail_from is not None
        transport = server.transport
        peer = session.peer
        message = CapturedMessage(
            mail_from="" if envelope.mail_from == "<>" else envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content),
            peer=(str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None,
            tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
            auth_user=session.auth_data if isinstance(session.auth_data, str) else None,
            received_at=datetime.now(timezone.utc),
            mail_options=list(envelope.mail_options),
            rcpt_options=list(envelope.rcpt_options),
        )
        try:
            self._capture._record(message)
        except OSError:
            log.exception("could not store a message from %s", message.mail_from)
            return "451 4.3.0 Could not store the message"
        return "250 2.0.0 OK: message captured"


class _Controller(Controller):
    """aiosmtpd's threaded Controller, serving on a socket that is already bound."""

    def __init__(
        self, smtp_factory: Callable[[], SMTP], sock: socket.socket, **kwargs: Any
    ) -> None:
        host, port = sock.getsockname()[:2]
        # hostname/port are only used by Controller._trigger_server() to poke the new server.
        super().__init__(None, hostname=host, port=port, **kwargs)
        self._smtp_factory = smtp_factory
        self._sock = sock

    def factory(self) -> SMTP:
        return self._smtp_factory()

    def _create_server(self) -> Awaitable[asyncio.AbstractServer]:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


def _bind(host: str, port: int) -> socket.socket:
    # Bind in the caller's thread: errors (port in use...) surface at once as OSError, and
    # port=0 yields one real port even for a name such as "localhost" with several addresses.
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    return socket.create_server(address[:2], family=family)


class CaptureServer:
    """A local SMTP server that keeps every message it receives.

    ``tls`` is ``"starttls"`` (STARTTLS offered; ``require_starttls`` refuses mail before it),
    ``"implicit"`` (TLS from the first byte, as on port 465) or ``"none"``. With TLS a private CA
    is created at :meth:`start`; clients trust it through :attr:`ca_file`, :attr:`ca_pem` or
    :meth:`client_ssl_context`. ``auth`` maps user names to passwords and enables AUTH PLAIN,
    LOGIN and CRAM-MD5; ``auth_require_tls`` (default: True unless ``tls="none"``) hides AUTH
    until STARTTLS. ``require_auth`` refuses MAIL before AUTH with 530. ``on_message`` is called
    (in the server thread) with each message. Use as a context manager, or call :meth:`start`
    and :meth:`stop`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        maildir: str | os.PathLike[str] | None = None,
        tls: TLSMode = "starttls",
        require_starttls: bool = False,
        auth: Mapping[str, str] | None = None,
        require_auth: bool = False,
        auth_require_tls: bool | None = None,
        on_message: Callable[[CapturedMessage], None] | None = None,
        data_size_limit: int | None = DEFAULT_DATA_SIZE_LIMIT,
        server_hostname: str = "localhost",
        ready_timeout: float = 5.0,
    ) -> None:
        if tls not in ("starttls", "implicit", "none"):
            raise ValueError(f"tls must be 'starttls', 'implicit' or 'none', not {tls!r}")
        if require_auth and not auth:
            raise ValueError("require_auth needs an auth mapping")
        if auth_require_tls is None:
            auth_require_tls = tls != "none"
        elif auth_require_tls and tls == "none":
            raise ValueError("auth_require_tls=True needs tls='starttls' or 'implicit'")
        if not 0 <= port <= 65535:
            raise ValueError(f"port out of range: {port}")
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._maildir = Path(maildir) if maildir is not None else None
        self._tls: TLSMode = tls
        self._require_starttls = require_starttls
        self._auth = dict(auth) if auth is not None else None
        self._require_auth = require_auth
        self._auth_require_tls = auth_require_tls
        self._on_message = on_message
        self._data_size_limit = data_size_limit
        self._server_hostname = server_hostname
        self._ready_timeout = ready_timeout
        self._controller: _Controller | None = None
        self._tmpdir: Path | None = None
        self._certs: _certs.LocalCertificates | None = None
        self._ca_file: Path | None = None
        self._messages: list[CapturedMessage] = []
        self._cond = threading.Condition()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the port, create the certificates (if TLS) and start serving in a thread."""
        if self._controller is not None:
            raise RuntimeError("capture server already running")
        if self._maildir is not None:
            for sub in ("new", "cur", "tmp"):
                (self._maildir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
        sock = _bind(self._host, self._requested_port)
        try:
            server_ctx = self._make_tls_context() if self._tls != "none" else None
            controller = _Controller(
                functools.partial(self._make_smtp, server_ctx),
                sock,
                ssl_context=server_ctx if self._tls == "implicit" else None,
                ready_timeout=self._ready_timeout,
            )
            try:
                controller.start()
            except BaseException:
                controller.stop(no_assert=True)
                if not controller.loop.is_closed():
                    controller.loop.close()
                raise
        except BaseException:
            sock.close()
            self._drop_certificates()
            raise
        self._controller = controller
        self._port = controller.port
        log.info("capture server on %s port %d (tls=%s)", self._host, self._port, self._tls)

    def _make_tls_context(self) -> ssl.SSLContext:
        self._tmpdir = Path(tempfile.mkdtemp(prefix="postwire-capture-"))
        self._certs = _certs.generate()
        files = _certs.write_files(self._certs, self._tmpdir)
        self._ca_file = files.ca_file
        return _certs.server_context(files)

    def _make_smtp(self, server_ctx: ssl.SSLContext | None) -> SMTP:
        # Called by the Controller for every connection, in the server thread.
        starttls = self._tls == "starttls"
        return _CaptureSMTP(
            _Handler(self, advertise_auth=self._auth is not None),
            users=self._auth,
            require_auth=self._require_auth,
            hostname=self._server_hostname,
            data_size_limit=self._data_size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,  # keep the bytes; also makes aiosmtpd advertise 8BITMIME
            tls_context=server_ctx if starttls else None,
            require_starttls=self._require_starttls and starttls,
            # aiosmtpd only counts STARTTLS as TLS; an implicit-TLS listener is always TLS.
            auth_require_tls=self._auth_require_tls and starttls,
        )

    def stop(self) -> None:
        """Stop serving and delete the certificate files; captured messages are kept."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()
        self._drop_certificates()

    def _drop_certificates(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        self._tmpdir = self._certs = self._ca_file = None

    def __enter__(self) -> CaptureServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses and TLS --------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address (or name) the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port the server listens on (the real one when created with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("capture server not started")
        return self._port

    @property
    def ca_pem(self) -> bytes:
        """The private CA certificate (PEM) that signed the server certificate."""
        if self._certs is None:
            raise RuntimeError("no certificate: server not running or tls='none'")
        return self._certs.ca_pem

    @property
    def ca_file(self) -> Path:
        """A PEM file holding :attr:`ca_pem`; deleted by :meth:`stop`."""
        if self._ca_file is None:
            raise RuntimeError("no certificate: server not running or tls='none'")
        return self._ca_file

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server (as localhost, 127.0.0.1 or ::1)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))

    # -- captured messages --------------------------------------------------------------------

    def _record(self, message: CapturedMessage) -> None:
        if self._maildir is not None:
            path = _deliver_to_maildir(self._maildir, message.data)
            message = replace(message, path=path)
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()
        log.info("%s", message.summary())
        if self._on_message is not None:
            try:
                self._on_message(message)
            except Exception:  # the message is stored; a broken callback must not refuse it
                log.exception("on_message callback failed")

    @property
    def messages(self) -> list[CapturedMessage]:
        """A copy of the messages received so far, oldest first."""
        with self._cond:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[CapturedMessage]:
        """Wait for at least ``count`` stored messages; TimeoutError after ``timeout`` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(
                    f"{len(self._messages)} of {count} messages arrived within {timeout} s"
                )
            return list(self._messages)

    def clear(self) -> None:
        """Forget the messages kept in memory (Maildir files stay)."""
        with self._cond:
            self._messages.clear()
