"""What :class:`Client` and :class:`AsyncClient` share that is not I/O.

The validated settings (the constructor, written once), the TLS and AUTH
choices, and how messages are prepared for a send.
"""

from __future__ import annotations

import email.parser
import email.policy
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .._core.commands import Ehlo, params_from
from .._core.connection import SMTPConnection
from .._core.dsn import DSN
from .._core.effects import Effect
from .._core.envelope import SendResult
from .._core.errors import ExtensionNotSupported, ProtocolError, Timeout
from .._core.extensions import Extensions
from .._core.message import PreparedMessage, envelope_from_message, prepare_message
from .._core.outcomes import may_resend_in_lock_step
from .._core.procedures import check_credentials_protected
from .._core.reply import Reply
from .._core.sasl import Mechanism, check_credential, choose_mechanism
from .._core.state import State
from .._core.timeouts import Timeouts
from .._core.transaction import transaction
from .._net.proxy import check_proxy_url
from .._net.tls import TLS_MODES, TLSMode, check_fingerprint, make_context, normalize_fingerprint
from ..config import account_options, url_options
from ..signing.dkim import DKIMSigner, sign_prepared
from .transcript import Tracer

__all__ = ["TLS_MODES", "BaseClient", "OAuth2Token", "TLSMode", "greeting_hint", "unpack_item"]

logger = logging.getLogger("postwire")

C = TypeVar("C", bound="BaseClient")

#: A bearer token, or a provider called right before AUTH (``AsyncClient``: may be async).
OAuth2Token = str | Callable[[], str] | Callable[[], Awaitable[str]]
#: States after which a connection is never used again.
_DEAD = (State.CLOSED, State.ERROR)


class BaseClient:
    """An SMTP client for one server connection: the settings both clients share.

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
        username: the user name for AUTH.
        password: the password for AUTH (never logged or shown).
        auth_mechanism: force one SASL mechanism instead of the strongest
            both sides support.
        oauth2_token: a bearer token, or a callable returning one (called
            right before AUTH, and once more if the server refuses it), for
            XOAUTH2 / OAUTHBEARER; :class:`AsyncClient` also takes an async
            callable.
        allow_plaintext_auth: allow credentials over an unencrypted
            connection (never the default).
        timeout: seconds for every network step (see ``timeouts``).
        timeouts: a :class:`~postwire.Timeouts` for each kind of step.
        local_hostname: the EHLO name; default: a valid name found without DNS.
        source_address: the local (host, port) to connect from.
        pipelining: use PIPELINING (RFC 2920) when offered.
        chunking: use CHUNKING (BDAT, RFC 3030) when offered.
        lmtp: speak LMTP (RFC 2033): LHLO, and a reply per recipient after the
            data, reported in the result; default port 24.
        proxy: reach the server through a SOCKS or HTTP CONNECT proxy,
            ``socks5://[user:password@]host:port`` or ``http://host:port``
            (``postwire[proxy]``); TLS is still verified against ``host``.
            A ``host`` that is an absolute path is a Unix domain socket.
        dkim: a :class:`~postwire.DKIMSigner`: every message is DKIM-signed
            (RFC 6376) over the bytes that go on the wire (``postwire[dkim]``).
        transcript: a callable receiving each transcript line (AUTH hidden).
        add_date_and_message_id: give an ``EmailMessage`` that has no Date or
            no Message-ID one (RFC 5322 §3.6.1, §3.6.4), as mail programs do;
            the Message-ID's domain is the sender's.  Bytes, files and
            iterables are always sent as they are.
    """

    _conn: SMTPConnection | None

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
        oauth2_token: OAuth2Token | None = None,
        allow_plaintext_auth: bool = False,
        timeout: float | None = 60.0,
        timeouts: Timeouts | None = None,
        local_hostname: str | None = None,
        source_address: tuple[str, int] | None = None,
        pipelining: bool = True,
        chunking: bool = True,
        transcript: Callable[[str], None] | None = None,
        add_date_and_message_id: bool = True,
        lmtp: bool = False,
        proxy: str | None = None,
        dkim: DKIMSigner | None = None,
    ) -> None:
        if tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
        if not isinstance(host, str) or not host or any(ch in host for ch in "\r\n\0 \t"):
            raise ValueError(f"host must be a host name, an address or a socket path: {host!r}")
        unix = host.startswith("/")
        if unix:
            if tls != "none" and server_hostname is None:
                raise ValueError(
                    "a Unix socket has no host name to verify a certificate against: "
                    "pass tls='none', or server_hostname= with the name on the certificate"
                )
            if proxy is not None:
                raise ValueError("a Unix socket cannot be reached through a proxy")
            port = 0
        elif port is None:
            # RFC 8314 §3.3: 465; SMTP: 25; LMTP must not use 25 (RFC 2033 §5): 24.
            port = 465 if tls == "implicit" else 24 if lmtp else 25
        bad_port = isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
        if not unix and bad_port:
            raise ValueError(f"port must be an int from 1 to 65535, not {port!r}")
        if proxy is not None:
            check_proxy_url(proxy)
        check_credential(username, "username")
        check_credential(password, "password")
        if isinstance(oauth2_token, str) or oauth2_token is None:
            check_credential(oauth2_token, "oauth2_token")
        if password is not None and username is None:
            raise ValueError("password given without username")
        if username is not None and password is None and oauth2_token is None:
            raise ValueError("username given without password or oauth2_token")
        if dkim is not None and not isinstance(dkim, DKIMSigner):
            raise TypeError(f"dkim must be a DKIMSigner, not {type(dkim).__name__}")
        if local_hostname is not None:
            Ehlo(local_hostname)  # raises ValueError for CR/LF, spaces, empty
        self.host = host
        self.port = port
        self.tls: TLSMode = tls
        self._ssl_context = ssl_context
        self._cafile = cafile
        self.server_hostname = server_hostname
        self.tls_fingerprint = (
            normalize_fingerprint(tls_fingerprint) if tls_fingerprint is not None else None
        )
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
        self.add_date_and_message_id = add_date_and_message_id
        self.lmtp = lmtp
        self.proxy = proxy
        self.dkim = dkim
        self._tracer = Tracer(transcript)
        self._busy = self._new_exclusive()
        self._conn = None
        self.ehlo_reply: Reply | None = None

    def _new_exclusive(self) -> Any:
        """What keeps two tasks or threads from using the connection at once."""
        raise NotImplementedError

    @classmethod
    def from_url(cls: type[C], url: str, **overrides: Any) -> C:
        """A client for the server an SMTP URL names (not connected yet).

        ``smtps://user:password@host:port`` (implicit TLS), ``smtp+starttls://``
        (STARTTLS required) or ``smtp://`` with ``?tls=``; other query options
        are listed in :mod:`postwire.config.url`.  ``overrides`` are keyword
        arguments of the constructor; one that is ``None`` keeps the URL's value.
        """
        return cls(**url_options(url, overrides))

    @classmethod
    def from_account(
        cls: type[C], account: str | None = None, *, config: str | None = None, **overrides: Any
    ) -> C:
        """A client for an account of the config file the command line reads (not connected).

        ``account=None`` takes the file's default account; ``config`` names
        the file (else ``$POSTWIRE_CONFIG``, else ``~/.config/postwire/config.toml``),
        and the ``POSTWIRE_*`` variables apply on top.  The password is read from
        the account's source now.  ``overrides`` as for :meth:`from_url`.
        """
        return cls(**account_options(account, config, overrides))

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        where = self.host if self.host.startswith("/") else f"{self.host}:{self.port}"
        return f"<{type(self).__name__} {where} tls={self.tls} {state}>"

    @property
    def connected(self) -> bool:
        """True while the session can take commands."""
        return self._conn is not None and self._conn.state not in _DEAD

    @property
    def greeting(self) -> Reply | None:
        """The server's greeting (its 220 reply) on the current connection, or None."""
        return self._conn.greeting if self._conn is not None else None

    @property
    def extensions(self) -> Extensions:
        """What the server offers (after connecting)."""
        return self._conn.extensions if self._conn is not None else Extensions()

    @property
    def tls_active(self) -> bool:
        return self._conn is not None and self._conn.tls_active

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = make_context(self._cafile, pinned=self.tls_fingerprint is not None)
        return self._ssl_context

    def _check_pin(self, tls_info: dict[str, object] | None) -> None:
        """After a handshake: the certificate must match ``tls_fingerprint``, if set."""
        if self.tls_fingerprint is None:
            return
        der = tls_info.get("peercert_der") if tls_info else None
        check_fingerprint(
            der if isinstance(der, bytes) else None,
            self.tls_fingerprint,
            f"{self.host}:{self.port}",
        )

    def _wants_starttls(self, conn: SMTPConnection) -> bool:
        if conn.tls_active:
            return False
        return self.tls == "starttls" or (self.tls == "opportunistic" and conn.extensions.starttls)

    @staticmethod
    def _check_token(token: object) -> str | None:
        if token is not None and not isinstance(token, str):
            raise TypeError(f"oauth2_token must give a str, not {type(token).__name__}")
        return token

    def _mechanism(self, conn: SMTPConnection, token: str | None) -> Mechanism:
        """The SASL mechanism to use, after the plain-text and AUTH checks."""
        check_credentials_protected(
            conn,
            allowed=self.allow_plaintext_auth,
            advice="use TLS (tls='starttls' or tls='implicit') or pass allow_plaintext_auth=True",
        )
        offered = conn.extensions.auth_mechanisms
        if not offered:
            raise ExtensionNotSupported(
                "credentials were given but the server offers no AUTH", step="AUTH"
            )
        return choose_mechanism(
            offered,
            username=self._username or "",
            password=self._password,
            oauth2_token=token,
            preferred=self._auth_mechanism,
            host=self.server_hostname or self.host,
            port=self.port,
        )

    def _transaction(
        self, conn: SMTPConnection, prepared: PreparedMessage
    ) -> Generator[Effect, Reply | None, SendResult]:
        """The core procedure that sends ``prepared`` with this client's settings."""
        return transaction(
            conn,
            prepared.envelope,
            prepared.content,
            pipelining=self.pipelining,
            chunking=self.chunking,
        )

    def _pipelines(self) -> bool:
        """Whether the next messages go pipelined (asked for, and offered).

        LMTP pipelines within a transaction only: its per-recipient replies after
        the data are not what a pipelined batch of SMTP transactions expects.
        """
        conn = self._conn
        return self.pipelining and conn is not None and conn.extensions.pipelining and not self.lmtp

    def _pipelining_fallback(
        self,
        broken: BaseException | None,
        pipelined: bool,
        run: list[tuple[int, PreparedMessage | BaseException]],
        outcomes: Mapping[int, object],
    ) -> list[tuple[int, PreparedMessage | BaseException]] | None:
        """After a run: the messages to resend in lock-step, or None to go on as is.

        A server that offers PIPELINING but answered a pipelined run out of step
        (a ProtocolError) gets no more pipelining from this client, and what
        certainly was not delivered is sent again on a new connection.
        """
        if not (isinstance(broken, ProtocolError) and pipelined):
            return None
        self.pipelining = False
        logger.warning("%s: pipelining turned off after: %s", self.host, broken)
        return [(i, m) for i, m in run if may_resend_in_lock_step(m, outcomes.get(i))]

    def _prepared_items(
        self, messages: Iterable[tuple[int, object]]
    ) -> Iterator[tuple[int, PreparedMessage | BaseException]]:
        """Each (index, message) prepared, or the ``ValueError``/``TypeError`` it raised."""
        for index, item in messages:
            try:
                message, sender, recipients = unpack_item(item)
                yield index, self._prepare(message, sender, recipients, None, None)
            except (ValueError, TypeError) as exc:
                yield index, exc

    def _prepare(
        self,
        message: object,
        sender: str | None,
        recipients: Sequence[str] | None,
        mail_options: Mapping[str, str | None] | None,
        rcpt_options: Mapping[str, str | None] | None,
        dsn: DSN | None = None,
        require_tls: bool = False,
    ) -> PreparedMessage:
        if _is_header_and_lines(message):
            message, sender, recipients = _from_header(message, sender, recipients)
        prepared = prepare_message(
            message,
            sender=sender,
            recipients=recipients,
            mail_params=params_from(mail_options or {}),
            rcpt_params=params_from(rcpt_options or {}),
            identify_in=self._own_domain() if self.add_date_and_message_id else None,
            dsn=dsn,
            requiretls=require_tls,
        )
        # Signed last, over what postwire added and normalized: what the server gets.
        return prepared if self.dkim is None else sign_prepared(prepared, self.dkim)

    def _own_domain(self) -> str:
        """The domain for a Message-ID when the sender has none: the EHLO name or host name."""
        # socket.gethostname() reads a kernel value: it never blocks on DNS.
        return self.local_hostname or socket.gethostname()


def unpack_item(item: object) -> tuple[object, str | None, Sequence[str] | None]:
    """A ``send_many`` item: a message, or ``(message, sender, recipients)``."""
    if isinstance(item, tuple):
        if len(item) != 3:
            raise ValueError("send_many items are messages or (message, sender, recipients)")
        return item[0], item[1], item[2]
    return item, None, None


def _is_header_and_lines(message: object) -> bool:
    return (
        isinstance(message, tuple)
        and len(message) == 2
        and isinstance(message[0], (str, bytes))
        and not isinstance(message[1], (str, bytes))
    )


def _from_header(
    message: object, sender: str | None, recipients: Sequence[str] | None
) -> tuple[bytes, str, Sequence[str]]:
    """A ``(header, lines)`` pair as :mod:`postwire.head` builds it, as bytes + envelope.

    The envelope comes from the header's From, To and CC fields unless given
    (a Bcc is never in such a header: pass ``recipients=`` for it).
    """
    from ..racket.head import compose_message  # the net/head layer sits above the clients

    assert isinstance(message, tuple)
    header, lines = message
    data = compose_message(header, lines)
    if sender is None or recipients is None:
        raw = header.encode("utf-8") if isinstance(header, str) else header
        fields = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        found_sender, found_rcpts = envelope_from_message(fields)
        sender = found_sender if sender is None else sender
        recipients = found_rcpts if recipients is None else recipients
    return data, sender, recipients


def greeting_hint(exc: Timeout, client: BaseClient) -> Timeout:
    """A greeting that never came, on a port that may want implicit TLS, says so."""
    if exc.step != "greeting" or client.tls == "implicit":
        return exc
    return Timeout(
        f"{exc} (if {client.host}:{client.port} is an implicit-TLS port such as 465, "
        "use tls='implicit')",
        step="greeting",
    )
