"""The capture server: a loopback SMTP server that keeps every message it receives.

:class:`CaptureServer` binds its ports in the caller's thread, serves on aiosmtpd's threaded
controller, keeps messages in a :class:`~.store.MessageStore` (and optionally a Maildir), and
can serve the web UI and HTTP API on the same event loop. With TLS it uses a throw-away CA
made at :meth:`~CaptureServer.start`, a CA kept in a folder, or a certificate given to it.
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
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from . import certs
from .faults import FaultScript
from .mailbox import Mailbox
from .message import CapturedMessage
from .protocol import CaptureHandler, CaptureSMTP
from .release import ReleaseTarget, parse_release_url
from .store import MessageStore

__all__ = ["DEFAULT_DATA_SIZE_LIMIT", "CaptureServer", "CaptureTLS", "TLSMode"]

log = logging.getLogger("postwire.capture")  # the logger of the whole capture server

#: How the server offers TLS: STARTTLS, implicit TLS from the first byte (port 465), or not.
CaptureTLS = Literal["starttls", "implicit", "none"]
#: The former name of :data:`CaptureTLS`, kept for existing imports.  It is not
#: :data:`postwire.TLSMode` (the client's modes): new code says ``CaptureTLS``.
TLSMode = CaptureTLS
#: The largest message accepted unless ``data_size_limit`` says otherwise (64 MiB).
DEFAULT_DATA_SIZE_LIMIT = 64 * 1024 * 1024
_LOOP_WAIT = 10.0  # seconds to wait for work handed to the server's loop


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
    ``"implicit"`` (TLS from the first byte, as on port 465) or ``"none"``. The certificate:
    ``certfile`` and ``keyfile`` if given; else one signed by the CA kept in ``ca_dir``
    (created there on first use and reused, as mkcert does; see :mod:`.certs`); else a
    throw-away CA made at :meth:`start` and deleted at :meth:`stop`. Clients trust it through
    :attr:`ca_file`, :attr:`ca_pem`, :meth:`client_ssl_context` or
    :attr:`certificate_fingerprint`. ``auth`` maps user names to passwords and enables AUTH
    PLAIN, LOGIN and CRAM-MD5; ``auth_require_tls`` (default: True unless ``tls="none"``)
    hides AUTH until STARTTLS. ``require_auth`` refuses MAIL before AUTH with 530.

    ``maildir`` also stores each message there, and lists again at :meth:`start` what an
    earlier run stored. ``web`` (``(host, port)``) serves the web UI and HTTP API there.
    ``faults`` is the fault script of the server's port (see :mod:`.faults`; settable while
    running through :attr:`faults`). ``release_to`` (a :class:`~.release.ReleaseTarget` or a
    URL) is where the UI's "release" sends. ``on_message`` is called (in the server thread)
    with each message. Use as a context manager, or call :meth:`start` and :meth:`stop`.
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
        ca_dir: str | os.PathLike[str] | None = None,
        certfile: str | os.PathLike[str] | None = None,
        keyfile: str | os.PathLike[str] | None = None,
        web: tuple[str, int] | None = None,
        faults: FaultScript | None = None,
        release_to: ReleaseTarget | str | None = None,
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
        if (certfile is None) != (keyfile is None):
            raise ValueError("certfile and keyfile go together")
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._tls: CaptureTLS = tls
        self._require_starttls = require_starttls
        self._auth = dict(auth) if auth is not None else None
        self._require_auth = require_auth
        self._auth_require_tls = auth_require_tls
        self._on_message = on_message
        self._data_size_limit = data_size_limit
        self._server_hostname = server_hostname
        self._ready_timeout = ready_timeout
        self._ca_dir = Path(ca_dir) if ca_dir is not None else None
        self._given_files = (
            certs.CertificateFiles(None, Path(certfile), Path(keyfile))
            if certfile is not None and keyfile is not None
            else None
        )
        self._web_address = web
        self.faults = faults or FaultScript()
        self.release_target = (
            parse_release_url(release_to) if isinstance(release_to, str) else release_to
        )
        self.store = MessageStore(maildir)
        self._store_unsubscribe: Callable[[], None] | None = None
        self._controller: _BoundController | None = None
        self._server_ctx: ssl.SSLContext | None = None
        self._tmpdir: Path | None = None
        self._files: certs.CertificateFiles | None = None
        self._web: Any = None
        self._mailboxes: dict[str, Mailbox] = {}

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Bind the ports, load the Maildir, set up TLS and start serving in a thread."""
        if self._controller is not None:
            raise RuntimeError("capture server already running")
        sock = _bind(self._host, self._requested_port)
        web_sock = None
        try:
            # Bound first: while an earlier run's Maildir is read, clients wait in the listen
            # queue instead of being refused.
            self.store.load()
            if self._web_address is not None:
                try:
                    web_sock = _bind(*self._web_address)
                except OSError as exc:  # say which of the two ports could not be had
                    raise OSError(exc.errno, exc.strerror, "web UI") from exc
            server_ctx = self._make_tls_context() if self._tls != "none" else None
            self._server_ctx = server_ctx
            controller = _BoundController(
                functools.partial(self._make_smtp, None),
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
            if web_sock is not None:
                web_sock.close()
            self._drop_certificates()
            raise
        self._controller = controller
        self._port = controller.port
        if self._on_message is not None:
            self._store_unsubscribe = self.store.subscribe(self._notify)
        if web_sock is not None:
            try:
                self._start_web(web_sock)
            except BaseException:
                web_sock.close()
                self.stop()
                raise
        log.info("capture server on %s port %d (tls=%s)", self._host, self._port, self._tls)

    def _start_web(self, sock: socket.socket) -> None:
        from .web import WebServer
        from .web.api import ApiContext

        def set_faults(script: FaultScript) -> None:
            self.faults = script

        assert self._controller is not None
        context = ApiContext(
            store=self.store,
            get_faults=lambda: self.faults,
            set_faults=set_faults,
            release_target=self.release_target,
            smtp_address=f"{self._host}:{self._port}",
        )
        web = WebServer(self.store, sock, self._controller.loop, context)
        self._run(web.start())
        self._web = web

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._controller is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._controller.loop)
        return future.result(_LOOP_WAIT)

    def _make_tls_context(self) -> ssl.SSLContext:
        if self._given_files is not None:
            self._files = self._given_files
        elif self._ca_dir is not None:
            self._files = certs.load_or_issue(self._ca_dir)
        else:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="postwire-capture-"))
            self._files = certs.write_files(certs.generate(), self._tmpdir)
        return certs.server_context(self._files)

    def _make_smtp(self, mailbox: Mailbox | None) -> SMTP:
        # Called by the Controller for every connection, in the server thread.
        starttls = self._tls == "starttls"

        def faults() -> FaultScript:
            return mailbox.faults if mailbox is not None else self.faults

        return CaptureSMTP(
            CaptureHandler(
                self._record,
                advertise_auth=self._auth is not None,
                mailbox=mailbox.name if mailbox is not None else None,
                faults=faults,
            ),
            users=self._auth,
            require_auth=self._require_auth,
            faults=faults,
            hostname=self._server_hostname,
            data_size_limit=self._data_size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,  # keep the bytes; also makes aiosmtpd advertise 8BITMIME
            tls_context=self._server_ctx if starttls else None,
            require_starttls=self._require_starttls and starttls,
            # aiosmtpd only counts STARTTLS as TLS; an implicit-TLS listener is always TLS.
            auth_require_tls=self._auth_require_tls and starttls,
        )

    def stop(self) -> None:
        """Stop serving and delete throw-away certificates; captured messages are kept."""
        controller, self._controller = self._controller, None
        web, self._web = self._web, None
        if controller is not None:
            if web is not None:
                try:
                    asyncio.run_coroutine_threadsafe(web.stop(), controller.loop).result(_LOOP_WAIT)
                except Exception:
                    log.exception("stopping the web server failed")
            for mailbox in list(self._mailboxes.values()):
                mailbox.close()
            controller.stop()
        if self._store_unsubscribe is not None:
            self._store_unsubscribe()
            self._store_unsubscribe = None
        self._drop_certificates()

    def _drop_certificates(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        self._tmpdir = self._files = None

    def __enter__(self) -> CaptureServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- mailboxes ------------------------------------------------------------------------------

    def open_mailbox(self, name: str, port: int = 0) -> Mailbox:
        """Listen on one more port whose messages are kept apart as mailbox ``name``."""
        if self._controller is None:
            raise RuntimeError("capture server not started")
        if name in self._mailboxes:
            raise ValueError(f"mailbox {name!r} is already open")
        sock = _bind(self._host, port)
        mailbox = Mailbox(self, name, self.store, sock.getsockname()[1])
        loop = self._controller.loop
        implicit = self._server_ctx if self._tls == "implicit" else None
        factory = functools.partial(self._make_smtp, mailbox)
        try:
            server = self._run(loop.create_server(factory, sock=sock, ssl=implicit))
        except BaseException:
            sock.close()
            raise

        def close() -> None:
            self._mailboxes.pop(name, None)
            loop.call_soon_threadsafe(server.close)

        mailbox._close = close
        self._mailboxes[name] = mailbox
        return mailbox

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
    def web_url(self) -> str:
        """The web UI's address (``http://host:port/``); RuntimeError when not serving it."""
        if self._web is None:
            raise RuntimeError("no web UI: server not running or web=None")
        url: str = self._web.url
        return url

    def _cert_files(self) -> certs.CertificateFiles:
        if self._files is None:
            raise RuntimeError("no certificate: server not running or tls='none'")
        return self._files

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate (PEM) that signed the server certificate."""
        return self.ca_file.read_bytes()

    @property
    def ca_file(self) -> Path:
        """A PEM file holding the CA; a throw-away one is deleted by :meth:`stop`."""
        ca_file = self._cert_files().ca_file
        if ca_file is None:
            raise RuntimeError("the CA of a certificate given by certfile is not known")
        return ca_file

    @property
    def certificate_fingerprint(self) -> str:
        """The server certificate's SHA-256 fingerprint (``AB:CD:...``), for pinning."""
        return certs.fingerprint(self._cert_files().cert_file.read_bytes())

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the server (as localhost, 127.0.0.1 or ::1)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))

    # -- captured messages --------------------------------------------------------------------

    def _record(self, message: CapturedMessage) -> None:
        stored = self.store.add(message)
        if log.isEnabledFor(logging.INFO):  # the summary parses the header: only when shown
            log.info("%s", stored.captured.summary())

    def _notify(self, change: Any) -> None:
        if change.kind == "new" and change.message is not None and self._on_message is not None:
            try:
                self._on_message(change.message.captured)
            except Exception:  # the message is stored; a broken callback must not refuse it
                log.exception("on_message callback failed")

    @property
    def messages(self) -> list[CapturedMessage]:
        """A copy of the messages received so far, oldest first (every mailbox)."""
        return [m.captured for m in self.store.all()]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[CapturedMessage]:
        """Wait for at least ``count`` stored messages; TimeoutError after ``timeout`` seconds."""
        return [m.captured for m in self.store.wait_for(count, timeout)]

    def clear(self) -> None:
        """Forget the messages kept in memory (Maildir files stay)."""
        self.store.forget()
