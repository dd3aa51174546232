"""A blocking socket stream with per-call timeouts."""

from __future__ import annotations

import socket
import ssl
import threading

from .._core.errors import ConnectError, ConnectTimeout
from .failures import read_failure, write_failure
from .proxy import connect_sync
from .tls import describe_tls

__all__ = ["SocketStream", "open_socket", "open_stream"]

# 64 KiB: a larger recv() buffer is mmap()ed afresh on many reads.
_READ_SIZE = 64 * 1024
# Linux: acknowledge at once instead of delaying the ACK (up to 40 ms).  A
# pipelining server such as Postfix may hold its next reply until our ACK
# arrives (Nagle on its side), which stalls windowed BDAT; the flag is reset
# by the kernel, so it is set again before each read.
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def open_socket(
    host: str, port: int, timeout: float | None, source_address: tuple[str, int] | None = None
) -> socket.socket:
    """Connect over TCP, mapping failures to :class:`ConnectError`."""
    try:
        sock = socket.create_connection((host, port), timeout, source_address)
    except TimeoutError:
        raise ConnectTimeout(
            f"connecting to {host}:{port} timed out after {timeout:.3g} s", step="connect"
        ) from None
    except OSError as exc:
        raise ConnectError(f"cannot connect to {host}:{port}: {exc}", step="connect") from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def open_stream(
    host: str,
    port: int,
    timeout: float | None,
    source_address: tuple[str, int] | None = None,
    proxy: str | None = None,
) -> SocketStream:
    """Connect over TCP, a proxy or a Unix socket; TLS is started on the stream afterwards.

    A ``host`` that is an absolute path is a Unix domain socket (``port`` unused).
    """
    if host.startswith("/"):
        return SocketStream(_open_unix(host, timeout), host)
    if proxy is not None:
        sock = connect_sync(proxy, host, port, timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return SocketStream(sock, f"{host}:{port}")
    return SocketStream(open_socket(host, port, timeout, source_address), f"{host}:{port}")


def _open_unix(path: str, timeout: float | None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except TimeoutError:
        sock.close()
        raise ConnectTimeout(
            f"connecting to {path} timed out after {timeout:.3g} s", step="connect"
        ) from None
    except OSError as exc:
        sock.close()
        raise ConnectError(f"cannot connect to {path}: {exc}", step="connect") from exc
    return sock


class SocketStream:
    """Reads and writes on a connected socket, TLS or not.

    ``abort`` may be called from another thread: it shuts the socket down so
    that a blocked read or write in the sending thread fails at once.
    """

    def __init__(self, sock: socket.socket, peer: str = "") -> None:
        self.sock = sock
        self.peer = peer
        self._closed = False
        self._lock = threading.Lock()
        self._timeout: float | None = -1.0
        self._quickack = sock.family in (socket.AF_INET, socket.AF_INET6)

    def _settimeout(self, timeout: float | None) -> None:
        # settimeout() costs fcntl() calls; most steps share one value.
        if timeout != self._timeout:
            self.sock.settimeout(timeout)
            self._timeout = timeout

    @property
    def local_address(self) -> str | None:
        """The local IP address, or None (a Unix socket has none)."""
        try:
            name = self.sock.getsockname()
        except OSError:
            return None
        return str(name[0]) if isinstance(name, tuple) else None

    def read(self, timeout: float | None, step: str) -> bytes:
        self._settimeout(timeout)
        try:
            if _QUICKACK is not None and self._quickack:
                self.sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            return self.sock.recv(_READ_SIZE)
        except OSError as exc:
            raise read_failure(exc, step, self.peer, timeout) from exc

    def write(self, data: bytes | bytearray | memoryview, timeout: float | None, step: str) -> None:
        self._settimeout(timeout)
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise write_failure(exc, step, self.peer, timeout) from exc

    def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> None:
        """Wrap the socket in TLS and do the handshake (errors propagate as ``ssl`` errors)."""
        self.sock.settimeout(timeout)
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        self._timeout = timeout

    def tls_info(self) -> dict[str, object] | None:
        return describe_tls(self.sock if isinstance(self.sock, ssl.SSLSocket) else None)

    def abort(self) -> None:
        """Break the connection now (from any thread)."""
        with self._lock:
            if self._closed:
                return
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.sock.close()
        except OSError:
            pass
