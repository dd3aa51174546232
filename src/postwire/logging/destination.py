"""Where the handler sends, from either vocabulary: the stdlib handler's or postwire's.

``mailhost``, ``credentials``, ``secure`` and ``timeout`` mean what they mean to
:class:`logging.handlers.SMTPHandler`, except for TLS (below).  ``url`` (an SMTP URL) or
``account`` (+ ``config``) name the server as :mod:`postwire.config` does, and
``client_options`` are :class:`~postwire.Client` keyword arguments applied last, so anything
postwire can do (implicit TLS, a CA file, a pinned certificate, OAuth2, a proxy) is reachable.

TLS: the stdlib handler speaks plain SMTP unless it has credentials *and* ``secure``, then
STARTTLS without checking the certificate; with credentials and no ``secure`` it sends the
password in clear.  Here ``secure`` only adds a client certificate: whatever it is, the
connection uses postwire's default, STARTTLS required and the certificate verified, and
credentials never travel unencrypted.  Plain text is there when asked by name:
``client_options={"tls": "none"}`` (and ``"allow_plaintext_auth": True`` to log in over it),
or ``{"tls": "opportunistic"}`` for STARTTLS when the server offers it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._net.tls import make_context
from ..config import from_account, from_url, with_overrides

__all__ = ["DEFAULT_TIMEOUT", "Destination", "resolve_destination"]

#: Seconds for each network step when neither ``timeout`` nor the configuration says
#: (the stdlib handler's default).
DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Destination:
    """The keyword arguments of the client, and the sender the configuration names (if any)."""

    options: Mapping[str, Any] = field(repr=False)  # holds the password
    sender: str | None = None

    @property
    def target(self) -> str:
        """``host:port``, or the socket path: for reports."""
        host = str(self.options["host"])
        port = self.options.get("port")
        return host if host.startswith("/") or port is None else f"{host}:{port}"


def resolve_destination(
    *,
    mailhost: str | Sequence[Any] | None = None,
    credentials: Sequence[str] | None = None,
    secure: Sequence[str] | None = None,
    timeout: float | None = None,
    url: str | None = None,
    account: str | None = None,
    config: str | None = None,
    client_options: Mapping[str, Any] | None = None,
) -> Destination:
    """The client's keyword arguments from the handler's arguments (see the module docstring).

    Exactly one of ``mailhost``, ``url`` and ``account``/``config`` names the server.
    Raises ``ValueError`` (:class:`~postwire.errors.ConfigError` for URLs and accounts) and
    ``OSError``/``ssl.SSLError`` for unreadable certificate files: at configuration time,
    never when a record is logged.
    """
    given = [name for name, value in (("mailhost", mailhost), ("url", url)) if value is not None]
    if account is not None or config is not None:
        given.append("account")
    if len(given) != 1:
        raise ValueError(
            "name the server with one of mailhost=, url= or account= (with config=), "
            f"not {' and '.join(given) or 'none'}"
        )
    sender: str | None = None
    if url is not None:
        configured = from_url(url)
        options, sender = configured.client_options(), configured.sender
    elif mailhost is not None:
        options = _mailhost(mailhost)
    else:
        configured = from_account(account, config=config)
        options, sender = configured.client_options(), configured.sender
    overrides: dict[str, Any] = {"timeout": timeout}
    if credentials is not None:
        overrides["username"], overrides["password"] = _pair(credentials)
    options = with_overrides(options, overrides)
    options.setdefault("timeout", DEFAULT_TIMEOUT)
    options = with_overrides(options, client_options or {})
    context = _client_certificate_context(secure, options)
    if context is not None:
        options["ssl_context"] = context
    return Destination(options, sender)


def _mailhost(mailhost: str | Sequence[Any]) -> dict[str, Any]:
    # As the stdlib handler: a host name, or a (host, port) pair (a list from dictConfig).
    if isinstance(mailhost, str):
        return {"host": mailhost}
    if isinstance(mailhost, Sequence) and len(mailhost) == 2 and isinstance(mailhost[0], str):
        port = mailhost[1]
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        return {"host": mailhost[0], "port": port}
    raise ValueError(f"mailhost is a host name or a (host, port) pair, not {mailhost!r}")


def _pair(credentials: Sequence[str]) -> tuple[str, str]:
    if isinstance(credentials, str) or len(credentials) != 2:
        raise ValueError("credentials is a (username, password) pair")
    username, password = credentials
    return username, password


def _client_certificate_context(
    secure: Sequence[str] | None, options: Mapping[str, Any]
) -> ssl.SSLContext | None:
    """A verifying context that presents the client certificate ``secure`` names, if any.

    ``(keyfile, certfile)`` as for the stdlib handler; ``(keyfile,)`` is read as one PEM
    file holding both the key and the certificate (what ``ssl.load_cert_chain`` takes).
    ``()`` and None add nothing.
    """
    if secure is None:
        return None
    if isinstance(secure, str) or len(secure) > 2:
        raise ValueError("secure is (), (keyfile,) or (keyfile, certfile)")
    if not secure:
        return None
    if options.get("ssl_context") is not None:
        raise ValueError(
            "secure= names certificate files and client_options has an ssl_context: "
            "load the certificate into that context instead"
        )
    keyfile = secure[0]
    certfile = secure[1] if len(secure) == 2 else keyfile
    context = make_context(options.get("cafile"), pinned=options.get("tls_fingerprint") is not None)
    context.load_cert_chain(certfile, keyfile)
    return context
