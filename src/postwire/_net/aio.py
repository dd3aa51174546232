"""An asyncio stream on a protocol of our own, with per-call timeouts.

We do not use ``asyncio.StreamReader``: after STARTTLS's 220 we must know
that no byte is buffered from before the handshake (response injection), and
a StreamReader keeps a private buffer we cannot inspect.  This protocol
hands every received byte to the driver, so the core's parser sees it all.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from .._core.errors import ConnectError, ConnectTimeout, ServerDisconnected, Timeout
from .failures import read_failure, write_failure
from .proxy import (
    MAX_CONNECT_REPLY,
    connect_request,
    is_http,
    parse_connect_reply,
    proxy_address,
    socks_connect_async,
)
from .tls import describe_tls

__all__ = ["AsyncSocketStream", "open_stream"]

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self._paused = False
        self._wake_writer()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    def _wake_writer(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def take(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    async def wait_readable(self, timeout: float | None) -> bool:
        """Wait until data or EOF is there; False on timeout."""
        while not self.buffer and not self.eof:
            self._readable = asyncio.get_running_loop().create_future()
            if not await _wait(self._readable, timeout):
                return False
        return True

    @property
    def paused(self) -> bool:
        return self._paused and not self.eof

    async def wait_writable(self, timeout: float | None) -> bool:
        """Wait until the transport takes more data; False on timeout."""
        while self._paused and not self.eof:
            self._writable = asyncio.get_running_loop().create_future()
            if not await _wait(self._writable, timeout):
                return False
        if self.eof and self.error is not None:
            raise ConnectionResetError(str(self.error))
        return True


async def _wait(future: asyncio.Future[None], timeout: float | None) -> bool:
    """Await ``future`` for at most ``timeout`` seconds; False if the time ran out.

    One timer callback instead of ``asyncio.wait_for``, which makes a Task for
    every call: this is on the path of every reply.
    """
    if timeout is None:
        await future
        return True
    expired = False

    def expire() -> None:
        nonlocal expired
        if not future.done():
            expired = True
            future.cancel()

    handle = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        await future
    except asyncio.CancelledError:
        if not expired:
            raise  # our own task was cancelled
        return False
    finally:
        handle.cancel()
    return True


async def open_stream(
    host: str,
    port: int,
    timeout: float | None,
    source_address: tuple[str, int] | None = None,
    proxy: str | None = None,
) -> AsyncSocketStream:
    """Connect over TCP, a proxy or a Unix socket within ``timeout``.

    A ``host`` that is an absolute path is a Unix domain socket.  TLS, implicit
    or after STARTTLS, is started on the stream afterwards.
    """
    loop = asyncio.get_running_loop()
    peer = host if host.startswith("/") else f"{host}:{port}"
    try:
        if host.startswith("/"):
            connecting = loop.create_unix_connection(_Protocol, host)
        elif proxy is not None and is_http(proxy):
            return await asyncio.wait_for(_http_tunnel(proxy, host, port, timeout), timeout)
        elif proxy is not None:
            sock = await socks_connect_async(proxy, host, port, timeout)
            connecting = loop.create_connection(_Protocol, sock=sock)
        else:
            connecting = loop.create_connection(_Protocol, host, port, local_addr=source_address)
        transport, protocol = await asyncio.wait_for(connecting, timeout)
    except asyncio.TimeoutError:
        raise ConnectTimeout(
            f"connecting to {peer} timed out after {timeout:.3g} s", step="connect"
        ) from None
    except OSError as exc:
        raise ConnectError(f"cannot connect to {peer}: {exc}", step="connect") from exc
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    return AsyncSocketStream(transport, protocol, peer)


async def _http_tunnel(url: str, host: str, port: int, timeout: float | None) -> AsyncSocketStream:
    """An HTTP CONNECT tunnel (RFC 9110 §9.3.6) through the proxy at ``url``.

    The proxy's reply is taken off our protocol's buffer up to its empty line;
    what follows (the server's greeting, if it came in the same segment) stays
    there for the SMTP parser.
    """
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(_Protocol, *proxy_address(url))
    try:
        transport.write(connect_request(url, host, port))
        while (end := protocol.buffer.find(b"\r\n\r\n")) < 0:
            if protocol.eof or len(protocol.buffer) > MAX_CONNECT_REPLY:
                break
            await protocol.wait_readable(timeout)
        head = bytes(protocol.buffer[: end + 4]) if end >= 0 else bytes(protocol.buffer)
        del protocol.buffer[: len(head)]
        parse_connect_reply(head, url, host, port)
    except BaseException:
        transport.abort()
        raise
    return AsyncSocketStream(transport, protocol, f"{host}:{port}")


class AsyncSocketStream:
    """Reads and writes on an asyncio transport, TLS or not.

    ``abort`` may be called from another thread (a ``CancelHandle``): it
    breaks the connection on the transport's own loop.
    """

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol, peer: str) -> None:
        self._loop = asyncio.get_running_loop()
        self.transport = transport
        self.protocol = protocol
        self.peer = peer
        sock = transport.get_extra_info("socket")
        self._sock = (
            sock
            if _QUICKACK is not None and sock is not None and sock.family != socket.AF_UNIX
            else None
        )

    @property
    def local_address(self) -> str | None:
        name = self.transport.get_extra_info("sockname")
        return str(name[0]) if isinstance(name, tuple) else None

    async def read(self, timeout: float | None, step: str) -> bytes:
        proto = self.protocol
        if self._sock is not None:
            # See _net/sync.py: no delayed ACK while we wait for pipelined replies.
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                self._sock = None
        if not proto.buffer and not proto.eof and not await proto.wait_readable(timeout):
            raise read_failure(None, step, self.peer, timeout)
        data = proto.take()
        if not data and self.protocol.error is not None:
            err = self.protocol.error
            raise read_failure(err, step, self.peer, timeout) from err
        return data

    async def write(
        self, data: bytes | bytearray | memoryview, timeout: float | None, step: str
    ) -> None:
        if self.transport.is_closing():
            raise ServerDisconnected(f"{step}: connection to {self.peer} is closed", step=step)
        # The transport may keep a view of what it could not send at once, and
        # the caller reuses its buffer: hand over bytes it owns.
        self.transport.write(data if isinstance(data, bytes) else bytes(data))
        if not self.protocol.paused:
            return  # the transport took it all (the usual case): no wait
        try:
            writable = await self.protocol.wait_writable(timeout)
        except OSError as exc:
            raise write_failure(exc, step, self.peer, timeout) from exc
        if not writable:
            raise write_failure(None, step, self.peer, timeout)

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> None:
        """Upgrade to TLS (STARTTLS); ``ssl`` errors propagate for the caller to explain."""
        loop = asyncio.get_running_loop()
        try:
            new = await asyncio.wait_for(
                loop.start_tls(
                    self.transport, self.protocol, context, server_hostname=server_hostname
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise Timeout(
                f"TLS handshake with {self.peer} took longer than {timeout:.3g} s", step="STARTTLS"
            ) from None
        if new is None:  # pragma: no cover - only if the transport closed meanwhile
            raise ServerDisconnected("connection closed during STARTTLS", step="STARTTLS")
        self.transport = new

    def tls_info(self) -> dict[str, object] | None:
        obj = self.transport.get_extra_info("ssl_object")
        return describe_tls(obj if isinstance(obj, (ssl.SSLObject, ssl.SSLSocket)) else None)

    def abort(self) -> None:
        """Break the connection now (from any thread)."""
        try:
            same_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            self.close()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.close)

    def close(self) -> None:
        """Close at once: after QUIT nothing is left to send, after a failure nothing may be."""
        self.transport.abort()
