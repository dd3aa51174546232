"""Helpers for the command-line tests: run ``python -m postwire`` as a subprocess.

Every run has a timeout, and an environment without the caller's ``POSTWIRE_*`` variables and
with ``XDG_CONFIG_HOME`` and ``XDG_DATA_HOME`` pointing into the test's own folder, so a
developer's real config file (or kept CA) can never leak into a test.
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

RUN_TIMEOUT = 60.0  # seconds for any one CLI run


def cli_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a CLI run: no POSTWIRE_* from outside, config under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTWIRE_")}
    config_home = home / "xdg"
    config_home.mkdir(parents=True, exist_ok=True)
    env["XDG_CONFIG_HOME"] = str(config_home)
    # The capture server keeps its CA in the user's data directory: keep it in the test's.
    env["XDG_DATA_HOME"] = str(home / "xdg-data")
    env.pop("POSTWIRE_CAROOT", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("POSTWIRE_DEBUG", None)
    env.update(extra or {})
    return env


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    stdin: bytes | None = None,
    timeout: float = RUN_TIMEOUT,
    program: Sequence[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m postwire ARGS`` (or ``program ARGS``) and return what it did."""
    argv = [*(program or (sys.executable, "-m", "postwire")), *args]
    done = subprocess.run(
        argv,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=dict(env),
        timeout=timeout,
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


def assert_no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert "Traceback" not in done.stdout, done.stdout


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single ``postwire: ...`` line an expected failure prints on stderr."""
    assert_no_traceback(done)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("postwire"), lines[0]
    return lines[0]


class LineReader:
    """Reads a subprocess's stream in a thread, so every wait for a line is bounded."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)

    def next_line(self, timeout: float = 15.0) -> str:
        line = self._lines.get(timeout=timeout)
        if line is None:
            raise EOFError(f"the stream ended; lines so far: {self.seen}")
        self.seen.append(line)
        return line

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        while True:
            line = self.next_line(timeout)
            if text in line:
                return line

    def rest(self, timeout: float = 15.0) -> list[str]:
        """Every line until the stream ends."""
        lines: list[str] = []
        self._thread.join(timeout)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return lines
            if line is None:
                return lines
            lines.append(line)


class DroppingServer:
    """A plain-text SMTP server on 127.0.0.1 that drops the connection after every message.

    It answers lock-step SMTP (no PIPELINING), keeps each message's data, and closes the
    socket right after its 250 for the end of the data, as a server restarting would.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.messages: list[bytes] = []
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> DroppingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(10)
                try:
                    self._session(conn)
                except OSError:
                    pass

    def _session(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        conn.sendall(b"220 drop.test ESMTP dropping test server\r\n")
        for raw in iter(f.readline, b""):
            verb = raw[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-drop.test\r\n250 8BITMIME\r\n")
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                data = bytearray()
                for line in iter(f.readline, b""):
                    if line == b".\r\n":
                        break
                    data += line
                self.messages.append(bytes(data))
                conn.sendall(b"250 2.0.0 kept\r\n")
                return  # drop the connection without waiting for QUIT
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 OK\r\n")
