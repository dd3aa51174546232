"""The capture server: a loopback SMTP server that keeps every message it receives.

:class:`CaptureServer` binds its port in the caller's thread, serves on
aiosmtpd's threaded controller, and keeps messages in memory (and optionally
in a Maildir).  With TLS it makes a throw-away CA at :meth:`~CaptureServer.start`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from . import certs
from .maildir import create_maildir, deliver_to_maildir
from .message import CapturedMessage
from .protocol import CaptureHandler, CaptureSMTP

__all__ = ["DEFAULT_DATA_SIZE_LIMIT", "CaptureServer", "CaptureTLS"]

log = logging.getLogger("postwire.capture")  # the logger of the whole capture server

#: How the server offers TLS: STARTTLS, implicit TLS from the first byte (port 465), or not.
CaptureTLS = Literal["starttls", "implicit", "none"]
#: The largest message accepted unless ``data_size_limit`` says otherwise (64 MiB).
DEFAULT_DATA_SIZE_LIMIT = 64 * 1024 * 1024


class _BoundController(Controller):
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
        tls: CaptureTLS = "starttls",
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
        self._tls: CaptureTLS = tls
        self._require_starttls = require_starttls
        self._auth = dict(auth) if auth is not None else None
        self._require_auth = require_auth
        self._auth_require_tls = auth_require_tls
        self._on_message = on_message
        self._data_size_limit = data_size_limit
        self._server_hostname = server_hostname
        self._ready_timeout = ready_timeout
        self._controller: _BoundController | None = None
        self._tmpdir: Path | None = None
        self._certs: certs.LocalCertificates | None = None
        self._ca_file: Path | None = None
        self._messages: list[CapturedMessage] = []
        self._cond = threading.Condition()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the port, create the certificates (if TLS) and start serving in a thread."""
        if self._controller is not None:
            raise RuntimeError("capture server already running")
        if self._maildir is not None:
            create_maildir(self._maildir)
        sock = _bind(self._host, self._requested_port)
        try:
            server_ctx = self._make_tls_context() if self._tls != "none" else None
            controller = _BoundController(
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
        self._certs = certs.generate()
        files = certs.write_files(self._certs, self._tmpdir)
        self._ca_file = files.ca_file
        return certs.server_context(files)

    def _make_smtp(self, server_ctx: ssl.SSLContext | None) -> SMTP:
        # Called by the Controller for every connection, in the server thread.
        starttls = self._tls == "starttls"
        return CaptureSMTP(
            CaptureHandler(self._record, advertise_auth=self._auth is not None),
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

    def __exit__(self, *exc_info: object) -> None:
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
            path = deliver_to_maildir(self._maildir, message.data)
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
