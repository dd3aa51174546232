"""``postwire.django.EmailBackend``: Django's SMTP backend contract, on :class:`postwire.Client`."""

from __future__ import annotations

import io
import ssl
import threading
from collections.abc import Iterable
from email.generator import BytesGenerator
from email.utils import parseaddr
from functools import cached_property
from typing import Any, NoReturn

from django.conf import settings
from django.core.mail.backends import smtp as django_smtp
from django.core.mail.backends.base import BaseEmailBackend

from .._core.envelope import SendResult
from ..client import Client
from ..errors import NoCommonMechanism, PlaintextAuthRefused, SASLError, SMTPError
from .errors import as_smtplib_error
from .settings import Arguments, Connection, resolve, tls_context

__all__ = ["EmailBackend"]

#: What a failed open() may raise that ``fail_silently`` hides (Django hides ``OSError``,
#: which ``smtplib.SMTPException`` and ``ssl.SSLError`` are).
_OPEN_ERRORS = (SMTPError, OSError, NoCommonMechanism, SASLError)

#: One message of a batch: the wire bytes, the envelope sender and recipients.
_Item = tuple[bytes, str, list[str]]


class EmailBackend(BaseEmailBackend):  # type: ignore[misc]  # Django ships no type hints
    """A drop-in for ``django.core.mail.backends.smtp.EmailBackend``, sending with postwire.

    ``EMAIL_BACKEND = "postwire.django.EmailBackend"`` reads the settings Django's
    SMTP backend reads (``EMAIL_HOST``, ``EMAIL_PORT``, ``EMAIL_HOST_USER``,
    ``EMAIL_HOST_PASSWORD``, ``EMAIL_USE_TLS``, ``EMAIL_USE_SSL``,
    ``EMAIL_TIMEOUT``, ``EMAIL_SSL_CERTFILE``, ``EMAIL_SSL_KEYFILE``) and takes the
    same arguments, which override them.  It keeps Django's contract: ``open()``
    returns True when it opened a connection, False when one was open, None when
    ``fail_silently`` hid a failure; ``close()``; use as a context manager;
    ``send_messages()`` returns how many messages were sent, skips messages
    without recipients, uses ``message.recipients()`` (Bcc included) as the
    envelope with the addresses sanitized as Django does, and sends
    ``message.message()`` as Django serializes it.

    What differs, on purpose:

    - TLS is verified: ``EMAIL_USE_TLS`` requires STARTTLS (never a fallback to
      plain text), ``EMAIL_USE_SSL`` is TLS from the first byte; certificates and
      host names are checked against the system's CAs, or
      ``POSTWIRE_EMAIL["cafile"]``, or a pinned ``tls_fingerprint``.  The client
      certificate of ``EMAIL_SSL_CERTFILE``/``EMAIL_SSL_KEYFILE`` is presented in
      the handshake.
    - With both ``EMAIL_USE_TLS`` and ``EMAIL_USE_SSL`` false the connection is
      plain text, as Django's is, even when the server offers STARTTLS
      (``POSTWIRE_EMAIL = {"tls": "opportunistic"}`` upgrades when offered).  A
      user name and password are then *not* sent: opening raises
      :class:`~postwire.errors.PlaintextAuthRefused` before AUTH, unless
      ``POSTWIRE_EMAIL = {"allow_plaintext_auth": True}`` says to send them.
    - ``EMAIL_TIMEOUT = None`` means postwire's 60 seconds per network step,
      not waiting forever.
    - A batch goes over one connection, pipelined when the server offers
      PIPELINING (RFC 2920); every message is tried, a failure does not stop
      the ones after it, and with ``fail_silently=False`` the first failure is
      raised once the batch is done.
    - Errors are postwire's typed errors that are also the ``smtplib`` exceptions
      Django code catches (:mod:`postwire.django.errors`).
    - Each message sent gets ``message.postwire_result``: the
      :class:`~postwire.SendResult` (accepted and refused recipients, the
      server's reply) or the error for that message; ``None`` for a message
      skipped for want of recipients.

    ``oauth2_token`` (``EMAIL_OAUTH2_TOKEN``) is a callable returning an OAuth 2.0
    bearer token, or its dotted path, for XOAUTH2/OAUTHBEARER as
    ``EMAIL_HOST_USER``; other keyword arguments are ``POSTWIRE_EMAIL`` keys.
    See :mod:`postwire.django.settings` for how the layers combine.
    """

    connection: Client | None

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool | None = None,
        fail_silently: bool = False,
        use_ssl: bool | None = None,
        timeout: float | None = None,
        ssl_keyfile: str | None = None,
        ssl_certfile: str | None = None,
        *,
        oauth2_token: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(fail_silently=fail_silently)
        self.config: Connection = resolve(
            Arguments(
                host=host,
                port=port,
                username=username,
                password=password,
                use_tls=use_tls,
                use_ssl=use_ssl,
                timeout=timeout,
                ssl_keyfile=ssl_keyfile,
                ssl_certfile=ssl_certfile,
                oauth2_token=oauth2_token,
                options=kwargs,
            )
        )
        # Django's attribute names, for code that reads them.
        self.host = self.config.host
        self.port = self.config.port
        self.username = self.config.username
        self.password = self.config.password
        self.use_tls = self.config.use_tls
        self.use_ssl = self.config.use_ssl
        self.timeout = self.config.timeout
        self.ssl_certfile = self.config.ssl_certfile
        self.ssl_keyfile = self.config.ssl_keyfile
        # Check the client options now (no I/O), as Django checks TLS/SSL in its constructor.
        Client(**self.config.client_options())
        self.connection = None
        self._open_error: BaseException | None = None
        self._lock = threading.RLock()

    @cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context: verified (TLS 1.2+), with the client certificate if one is set.

        Made at the first connection, as Django makes its own, so that an
        unreadable certificate is an ``OSError`` of ``open()``.
        """
        return tls_context(self.config)

    # -- the connection ---------------------------------------------------------------------

    def open(self) -> bool | None:
        """Connect (greeting, EHLO, TLS, AUTH) unless connected.

        Returns True when a new connection was opened, False when one was
        already open, None when ``fail_silently`` hid the failure to connect.
        """
        if self.connection is not None:
            if self.connection.connected:
                return False
            self.connection.close()  # dropped by the server since: connect again
            self.connection = None
        self._open_error = None
        try:
            options = self.config.client_options()
            if self.config.tls != "none":
                options["ssl_context"] = self.ssl_context
            client = Client(**options)
            client.connect()
        except PlaintextAuthRefused as exc:
            self._open_error = as_smtplib_error(_django_advice(exc))
            if self.fail_silently:
                return None
            raise self._open_error from None
        except _OPEN_ERRORS as exc:
            self._open_error = as_smtplib_error(exc)
            if self.fail_silently:
                return None
            _reraise(exc, self._open_error)
        self.connection = client
        return True

    def close(self) -> None:
        """QUIT and close the connection, if one is open (errors are ignored)."""
        client, self.connection = self.connection, None
        if client is not None:
            client.quit()

    # -- sending ----------------------------------------------------------------------------

    def send_messages(self, email_messages: Iterable[Any]) -> int:
        """Send Django ``EmailMessage`` objects over one connection; returns how many were sent.

        A message counts as sent when the server took it for at least one
        recipient (refused recipients are in ``message.postwire_result.refused``,
        as ``smtplib`` reports them without raising).  Invalid addresses raise
        ``ValueError`` before anything is sent, whatever ``fail_silently`` says,
        as with Django.
        """
        messages = list(email_messages or ())
        if not messages:
            return 0
        with self._lock:
            batch: list[tuple[Any, _Item]] = []
            for message in messages:
                item = self._item(message)
                if item is None:
                    message.postwire_result = None
                else:
                    batch.append((message, item))
            if not batch:
                return 0
            created = self.open()
            if self.connection is None or created is None:
                for message, _ in batch:
                    message.postwire_result = self._open_error
                return 0
            try:
                return self._send_batch(self.connection, batch)
            finally:
                if created:
                    self.close()

    def _send_batch(self, client: Client, batch: list[tuple[Any, _Item]]) -> int:
        """``send_many`` on one connection; results onto the messages; the first failure raised."""
        outcomes = client.send_many([item for _, item in batch])
        sent = 0
        failure: tuple[BaseException, BaseException] | None = None
        for (message, (_, sender, _)), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, SendResult):
                message.postwire_result = outcome
                sent += 1
                continue
            error = as_smtplib_error(outcome, sender=sender)
            message.postwire_result = error
            # fail_silently hides what Django's backend hides (smtplib errors are OSErrors);
            # anything else (a bad message) is raised regardless, as Django raises it.
            if failure is None and not (self.fail_silently and isinstance(error, OSError)):
                failure = (outcome, error)
        if not client.connected:
            # The connection broke: the next send opens a new one.
            client.close()
            if self.connection is client:
                self.connection = None
        if failure is not None:
            _reraise(*failure)
        return sent

    def _item(self, message: Any) -> _Item | None:
        """The wire bytes and envelope of a Django message, or None without recipients."""
        recipients = message.recipients()
        if not recipients:
            return None
        encoding = message.encoding or settings.DEFAULT_CHARSET
        sender = self.prep_address(message.from_email, encoding)
        return (
            wire_bytes(message),
            sender,
            [self.prep_address(address, encoding) for address in recipients],
        )

    def prep_address(self, address: Any, encoding: str | None = None) -> str:
        """The envelope form of an address (its addr-spec), checked as Django checks it.

        Django 6.0+ has ``prep_address`` on its SMTP backend, and it is used as
        is; before, ``sanitize_address`` (IDNA domains, RFC 2047 for non-ASCII
        local parts, ``ValueError`` for CR/LF and unparsable addresses) and the
        addr-spec ``smtplib.sendmail`` would take from the result.
        """
        django_prep = getattr(django_smtp.EmailBackend, "prep_address", None)
        if django_prep is not None:
            return str(django_prep(self, address))
        from django.core.mail.message import sanitize_address

        encoding = encoding or settings.DEFAULT_CHARSET
        return parseaddr(sanitize_address(address, encoding))[1]


def wire_bytes(message: Any) -> bytes:
    """``message.message()`` with CRLF line ends, serialized exactly as Django's backend does.

    (Django up to 5.2: ``as_bytes(linesep="\\r\\n")`` on its ``email.mime``
    classes; 6.0: the modern message under ``email.policy.SMTP``: both are
    this generator.)
    """
    buffer = io.BytesIO()
    BytesGenerator(buffer, mangle_from_=False).flatten(message.message(), linesep="\r\n")
    return buffer.getvalue()


def _django_advice(exc: PlaintextAuthRefused) -> PlaintextAuthRefused:
    """The refusal, with the settings that lift it named in Django's terms."""
    return PlaintextAuthRefused(
        "EMAIL_HOST_USER and EMAIL_HOST_PASSWORD were not sent: the connection is not "
        "encrypted (EMAIL_USE_TLS and EMAIL_USE_SSL are both False). Set EMAIL_USE_TLS = True "
        "(STARTTLS) or EMAIL_USE_SSL = True, or, to send them in clear text anyway, "
        'POSTWIRE_EMAIL = {"allow_plaintext_auth": True}',
        reply=exc.reply,
        step=exc.step,
    )


def _reraise(original: BaseException, converted: BaseException) -> NoReturn:
    # The cause stays the original's; the context is not the original again.
    raise converted from original.__cause__
