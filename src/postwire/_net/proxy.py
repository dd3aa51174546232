"""Connecting through a SOCKS or HTTP CONNECT proxy, sync and asyncio.

The proxy only carries bytes: TLS (implicit, or after STARTTLS) is started on
the tunnel and verified against the mail server's name, never the proxy's.
Names are resolved by the proxy (``socks5h`` behaviour) so that a client behind
it needs no DNS of its own.

SOCKS goes through python-socks.  HTTP CONNECT (RFC 9110 §9.3.6) is written
here: SMTP's server speaks first, and its greeting may arrive in the same
segment as the proxy's ``200`` (tinyproxy sends them so); python-socks reads
past the end of the proxy's reply and would lose it.  Here the reply is read
up to its empty line and not one byte further.
"""

from __future__ import annotations

import base64
import socket
import urllib.parse
from typing import Any

from .._core.errors import ConnectError, ConnectTimeout

__all__ = [
    "MAX_CONNECT_REPLY",
    "PROXY_SCHEMES",
    "check_proxy_url",
    "connect_request",
    "connect_sync",
    "is_http",
    "parse_connect_reply",
    "proxy_address",
    "socks_connect_async",
]

#: The proxy URL schemes python-socks speaks.
PROXY_SCHEMES = ("socks5", "socks5h", "socks4", "socks4a", "http")


def check_proxy_url(url: str) -> str:
    """Refuse a proxy URL that is not ``scheme://[user:password@]host:port`` (before I/O)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad proxy URL: {exc}") from None
    if parts.scheme.lower() not in PROXY_SCHEMES or not parts.hostname or port is None:
        raise ValueError(
            f"proxy must be {'|'.join(PROXY_SCHEMES)}://[user:password@]host:port, "
            f"not {parts.scheme or '(no scheme)'}://{parts.hostname or ''}..."
        )
    return url


def _from_url(url: str, flavour: str) -> Any:
    try:
        if flavour == "sync":
            from python_socks.sync import Proxy as factory
        else:
            from python_socks.async_.asyncio import Proxy as factory  # type: ignore[assignment]
    except ImportError:
        raise ImportError(
            "connecting through a proxy needs the python-socks package: "
            "pip install 'postwire[proxy]'"
        ) from None
    # socks5h:// is socks5 with the name resolved by the proxy: python-socks calls it rdns.
    scheme, sep, rest = url.partition("://")
    rdns = scheme.lower() in ("socks5h", "socks4a", "socks5")
    plain = {"socks5h": "socks5", "socks4a": "socks4"}.get(scheme.lower(), scheme.lower())
    return factory.from_url(f"{plain}{sep}{rest}", rdns=rdns)


def _failure(
    exc: BaseException, url: str, host: str, port: int, timeout: float | None
) -> Exception:
    from python_socks import ProxyTimeoutError

    where = urllib.parse.urlsplit(url)
    proxy = f"{where.scheme}://{where.hostname}:{where.port}"  # never the credentials
    if isinstance(exc, (ProxyTimeoutError, TimeoutError)):
        return ConnectTimeout(
            f"connecting to {host}:{port} through the proxy {proxy} timed out after "
            f"{timeout:.3g} s",
            step="connect",
        )
    return ConnectError(
        f"cannot connect to {host}:{port} through the proxy {proxy}: {exc}", step="connect"
    )


def is_http(url: str) -> bool:
    return url.lower().startswith("http://")


def connect_request(url: str, host: str, port: int) -> bytes:
    """The CONNECT request for ``host:port`` (RFC 9110 §9.3.6), with Basic credentials."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        lines.append(f"Proxy-Authorization: Basic {token}")  # RFC 7617
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def parse_connect_reply(head: bytes, url: str, host: str, port: int) -> None:
    """Raise :class:`ConnectError` unless the proxy's reply head says 2xx."""
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    fields = status.split(" ", 2)
    if len(fields) >= 2 and fields[0].startswith("HTTP/") and fields[1][:1] == "2":
        return
    where = urllib.parse.urlsplit(url)
    # 407 (RFC 9110 §15.5.8); tinyproxy answers 401.
    wants = " 407" in status or " 401" in status
    hint = " (the proxy wants credentials: http://user:password@host:port)" if wants else ""
    raise ConnectError(
        f"the proxy http://{where.hostname}:{where.port} refused to connect to "
        f"{host}:{port}: {status or 'no reply'}{hint}",
        step="connect",
    )


def proxy_address(url: str) -> tuple[str, int]:
    """The proxy's own (host, port), from a URL :func:`check_proxy_url` accepted."""
    where = urllib.parse.urlsplit(url)
    assert where.hostname is not None and where.port is not None
    return where.hostname, where.port


def _http_connect_sync(url: str, host: str, port: int, timeout: float | None) -> socket.socket:
    try:
        sock = socket.create_connection(proxy_address(url), timeout)
    except OSError as exc:
        raise _failure(exc, url, host, port, timeout) from exc
    try:
        sock.sendall(connect_request(url, host, port))
        head = bytearray()
        while True:
            # Peek, and take only the bytes of the proxy's reply: what follows the
            # empty line that ends it is the SMTP server's greeting.
            peeked = sock.recv(MAX_CONNECT_REPLY, socket.MSG_PEEK)
            if not peeked:
                break
            tail = bytes(head[-3:])
            end = (tail + peeked).find(b"\r\n\r\n")
            if end >= 0:
                head += sock.recv(end + 4 - len(tail))
                break
            head += sock.recv(len(peeked))
            if len(head) > MAX_CONNECT_REPLY:
                raise ConnectError("the proxy's reply to CONNECT is too long", step="connect")
        parse_connect_reply(bytes(head), url, host, port)
    except ConnectError:
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        raise _failure(exc, url, host, port, timeout) from exc
    return sock


#: A CONNECT reply head larger than this is not a proxy talking.
MAX_CONNECT_REPLY = 16 * 1024


def connect_sync(url: str, host: str, port: int, timeout: float | None) -> socket.socket:
    """A connected socket to ``host:port`` through the proxy at ``url``."""
    if is_http(url):
        return _http_connect_sync(url, host, port, timeout)
    from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError

    proxy = _from_url(url, "sync")
    try:
        sock: socket.socket = proxy.connect(dest_host=host, dest_port=port, timeout=timeout)
    except (ProxyError, ProxyConnectionError, ProxyTimeoutError, OSError) as exc:
        raise _failure(exc, url, host, port, timeout) from exc
    return sock


async def socks_connect_async(
    url: str, host: str, port: int, timeout: float | None
) -> socket.socket:
    """A SOCKS tunnel for asyncio (the socket is then handed to the event loop)."""
    from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError

    proxy = _from_url(url, "async")
    try:
        sock: socket.socket = await proxy.connect(dest_host=host, dest_port=port, timeout=timeout)
    except (ProxyError, ProxyConnectionError, ProxyTimeoutError, OSError) as exc:
        raise _failure(exc, url, host, port, timeout) from exc
    return sock
