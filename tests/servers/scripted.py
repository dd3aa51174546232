"""A scripted SMTP server on 127.0.0.1 for exact-transcript and fault tests.

A script is a list of steps.  ``("S", b"...")`` sends bytes to the client;
``("C", b"...")`` waits until the client has sent exactly those bytes (a
mismatch is recorded and the connection closed); ``("TLS",)`` does a server
TLS handshake; ``("CLOSE",)`` closes the connection; ``("SLEEP", s)`` waits.
Everything the client sent is recorded in ``received`` (one bytes object per
connection), and the lines the server never got to are in ``unmet``.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any

Step = tuple[Any, ...]


class ScriptedServer:
    def __init__(
        self,
        script: Sequence[Step],
        *,
        then: Sequence[Sequence[Step]] = (),
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.script = list(script)
        #: Scripts for the next connections, served one after the other.
        self.scripts = [self.script, *(list(t) for t in then)]
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.timeout = timeout
        self.received: list[bytes] = []
        self.errors: list[str] = []
        self.finished = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4)
        self._listener.settimeout(timeout)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finished.wait(self.timeout)
        self._listener.close()
        self._thread.join(self.timeout)

    @property
    def all_received(self) -> bytes:
        return b"".join(self.received)

    def _serve(self) -> None:
        for script in self.scripts:
            self.script = script
            if not self._serve_one():
                break
        self.finished.set()

    def _serve_one(self) -> bool:
        try:
            conn, _ = self._listener.accept()
        except OSError:
            self.errors.append("no client connected")
            return False
        record = bytearray()
        self.received.append(b"")
        index = len(self.received) - 1
        conn.settimeout(self.timeout)
        sock: socket.socket = conn
        try:
            if self.implicit_tls:
                assert self.tls_context is not None
                sock = self.tls_context.wrap_socket(sock, server_side=True)
            pending = bytearray()
            for step in self.script:
                kind = step[0]
                if kind == "S":
                    sock.sendall(step[1])
                elif kind == "C":
                    want: bytes = step[1]
                    while len(pending) < len(want):
                        data = sock.recv(65536)
                        if not data:
                            break
                        pending += data
                        record += data
                        self.received[index] = bytes(record)
                    got = bytes(pending[: len(want)])
                    del pending[: len(want)]
                    if got != want:
                        self.errors.append(f"expected {want!r}, got {got!r}")
                        break
                elif kind == "TLS":
                    assert self.tls_context is not None
                    if pending:
                        self.errors.append(f"client sent {bytes(pending)!r} before TLS")
                        break
                    sock = self.tls_context.wrap_socket(sock, server_side=True)
                elif kind == "CLOSE":
                    break
                elif kind == "SLEEP":
                    time.sleep(step[1])
                elif kind == "DRAIN":
                    # Read whatever the client sends until it closes (bounded).
                    deadline = time.monotonic() + step[1]
                    while time.monotonic() < deadline:
                        try:
                            data = sock.recv(65536)
                        except (TimeoutError, OSError):
                            break
                        if not data:
                            break
                        record += data
                        self.received[index] = bytes(record)
                else:  # pragma: no cover
                    raise ValueError(f"bad step {step!r}")
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.received[index] = bytes(record)
            try:
                sock.close()
            except OSError:
                pass
        return True
