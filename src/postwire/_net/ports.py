"""Streams over Racket-style port pairs: a reader and a writer object.

Racket's ``#:tcp-connect`` returns an input and an output port, and
``#:tls-encode`` turns such a pair into TLS ports.  Here a "port" is a binary
file object (``read1``/``read`` and ``write``/``flush``) or a socket.  TLS over
arbitrary file objects is done with :class:`ssl.SSLObject` and memory BIOs.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from .failures import read_failure, write_failure
from .tls import describe_tls

__all__ = ["PortsStream", "TLSPort"]

_READ_SIZE = 65536


def _socket_of(obj: object) -> socket.socket | None:
    if isinstance(obj, socket.socket):
        return obj
    sock = getattr(obj, "socket", None)
    return sock if isinstance(sock, socket.socket) else None


class PortsStream:
    """The driver's stream over a (reader, writer) pair.

    Timeouts apply when the ports are sockets (or :class:`TLSPort` over
    sockets); plain file objects have no way to time out a read.
    """

    def __init__(self, reader: Any, writer: Any, peer: str = "") -> None:
        self.reader = reader
        self.writer = writer
        self.peer = peer

    @property
    def local_address(self) -> str | None:
        sock = _socket_of(self.reader)
        if sock is None:
            return None
        try:
            return str(sock.getsockname()[0])
        except OSError:
            return None

    def _settimeout(self, obj: object, timeout: float | None) -> None:
        sock = _socket_of(obj)
        if sock is not None:
            sock.settimeout(timeout)

    def read(self, timeout: float | None, step: str) -> bytes:
        self._settimeout(self.reader, timeout)
        try:
            if isinstance(self.reader, socket.socket):
                return self.reader.recv(_READ_SIZE)
            read1 = getattr(self.reader, "read1", None)
            data = read1(_READ_SIZE) if read1 is not None else self.reader.read(1)
            return bytes(data)
        except (OSError, ValueError) as exc:
            raise read_failure(exc, step, self.peer, timeout) from exc

    def write(self, data: bytes | bytearray | memoryview, timeout: float | None, step: str) -> None:
        self._settimeout(self.writer, timeout)
        try:
            if isinstance(self.writer, socket.socket):
                self.writer.sendall(data)
            else:
                self.writer.write(bytes(data))
                self.writer.flush()
        except (OSError, ValueError) as exc:
            raise write_failure(exc, step, self.peer, timeout) from exc

    def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
    ) -> None:
        raise NotImplementedError("port pairs are upgraded by their tls_encode function")

    def tls_info(self) -> dict[str, object] | None:
        reader = self.reader
        if isinstance(reader, ssl.SSLSocket):
            return describe_tls(reader)
        return describe_tls(reader.ssl_object) if isinstance(reader, TLSPort) else None

    def replace(self, reader: Any, writer: Any) -> None:
        self.reader, self.writer = reader, writer

    def abort(self) -> None:
        for obj in (self.reader, self.writer):
            sock = _socket_of(obj)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        for obj in (self.writer, self.reader):
            try:
                obj.close()
            except (OSError, ValueError):
                pass


class TLSPort:
    """A TLS connection over a reader/writer pair, usable as both ports.

    Built on :class:`ssl.SSLObject` with memory BIOs, so the underlying
    ports can be any binary file objects.  ``socket`` exposes the underlying
    socket when there is one, so timeouts still apply.
    """

    def __init__(
        self,
        reader: Any,
        writer: Any,
        context: ssl.SSLContext,
        server_hostname: str | None,
        *,
        close_original: bool = True,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        self._close_original = close_original
        self.socket = _socket_of(reader)
        self._handshake()

    def _pump_out(self) -> None:
        data = self._out.read()
        if data:
            if isinstance(self._writer, socket.socket):
                self._writer.sendall(data)
            else:
                self._writer.write(data)
                self._writer.flush()

    def _pump_in(self) -> bool:
        if isinstance(self._reader, socket.socket):
            data = self._reader.recv(_READ_SIZE)
        else:
            read1 = getattr(self._reader, "read1", None)
            data = read1(_READ_SIZE) if read1 is not None else self._reader.read(1)
        if not data:
            self._in.write_eof()
            return False
        self._in.write(data)
        return True

    def _handshake(self) -> None:
        while True:
            try:
                self._obj.do_handshake()
                self._pump_out()
                return
            except ssl.SSLWantReadError:
                self._pump_out()
                if not self._pump_in():
                    raise ssl.SSLEOFError("connection closed during the TLS handshake") from None

    def read1(self, size: int = _READ_SIZE) -> bytes:
        while True:
            try:
                return self._obj.read(size)
            except ssl.SSLWantReadError:
                self._pump_out()
                if not self._pump_in():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""

    read = read1

    def write(self, data: bytes) -> int:
        self._obj.write(data)
        self._pump_out()
        return len(data)

    def flush(self) -> None:
        self._pump_out()

    def version(self) -> str | None:
        return self._obj.version()

    @property
    def ssl_object(self) -> ssl.SSLObject:
        return self._obj

    def close(self) -> None:
        try:
            self._obj.unwrap()
            self._pump_out()
        except (ssl.SSLError, OSError, ValueError):
            pass
        if self._close_original:
            for obj in (self._writer, self._reader):
                try:
                    obj.close()
                except (OSError, ValueError):
                    pass
