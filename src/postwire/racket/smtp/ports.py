"""Connections for the Racket ``net/smtp`` layer.

Racket's ``ssl-connect`` (implicit TLS) and ``ports->ssl-ports`` (STARTTLS),
both verifying certificates, and the stream that a connected socket or a
``(reader, writer)`` pair of ports becomes.
"""

from __future__ import annotations

import contextvars
import socket
import ssl
from typing import Any

from ..._net.ports import PortsStream, TLSPort
from ..._net.sync import SocketStream, open_socket
from ..._net.tls import explain_tls_error, make_context

__all__ = ["current_server", "ports_to_ssl_ports", "ssl_connect", "stream_for"]

# The server of the send in progress, so ports_to_ssl_ports can verify the
# certificate against it although Racket's tls-encode gets no host name.
current_server: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "postwire_smtp_server", default=None
)


def ssl_connect(
    host: str,
    port: int,
    *,
    context: ssl.SSLContext | None = None,
    timeout: float | None = 60.0,
) -> socket.socket:
    """Racket's ``ssl-connect`` for ``#:tcp-connect``: implicit TLS (port 465).

    Unlike Racket (TLS 1.0, nothing verified), it negotiates TLS 1.2 or newer
    and verifies the certificate and host name.
    """
    sock = open_socket(host, port, timeout)
    try:
        return (context or make_context()).wrap_socket(sock, server_hostname=host)
    except (ssl.SSLError, ssl.CertificateError) as exc:
        sock.close()
        raise explain_tls_error(exc, host, port, implicit=True, server_hostname=None) from exc


def ports_to_ssl_ports(
    reader: Any,
    writer: Any,
    *,
    mode: str = "connect",
    encrypt: str = "tls",
    close_original: bool = True,
    hostname: str | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[Any, Any]:
    """Racket's ``ports->ssl-ports`` for ``#:tls-encode`` (STARTTLS).

    The certificate is verified against ``hostname``, by default the server
    of the :func:`smtp_send_message` call in progress.  ``encrypt`` is
    accepted for compatibility; the protocol is always TLS 1.2 or newer
    (Racket's ``'tls`` means TLS 1.0 only, which modern servers refuse).
    """
    if mode != "connect":
        raise ValueError("ports_to_ssl_ports: only mode='connect' (client) is supported")
    server = hostname or current_server.get()
    ctx = context or make_context()
    if isinstance(reader, socket.socket) and reader is writer:
        tls = ctx.wrap_socket(reader, server_hostname=server)
        return tls, tls
    port = TLSPort(reader, writer, ctx, server, close_original=close_original)
    return port, port


def stream_for(ports: Any, peer: str) -> PortsStream | SocketStream:
    """The stream over what ``tcp_connect`` returned: a socket or a (reader, writer) pair."""
    if isinstance(ports, socket.socket):
        if isinstance(ports, ssl.SSLSocket):
            return PortsStream(ports, ports, peer)
        return SocketStream(ports, peer)
    try:
        reader, writer = ports
    except (TypeError, ValueError):
        raise TypeError(
            "tcp_connect must return a connected socket or a (reader, writer) pair"
        ) from None
    return PortsStream(reader, writer, peer)
