"""A real server program run in the foreground by the tests, on 127.0.0.1, with a bounded start.

Each of the small fixtures built on it (Dovecot's LMTP, Dante, tinyproxy, OpenDKIM) writes its
configuration under one base folder, starts the program as a child in its own process group,
waits until it listens (a TCP port on 127.0.0.1, or a socket path), and stops the whole group
at the end: SIGTERM, a bounded wait, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

__all__ = ["Daemon", "PrivateServer", "free_port", "require_tool"]

_Server = TypeVar("_Server", bound="PrivateServer")

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_tool(*candidates: str) -> str:
    """The path of the first program found (PATH, then /usr/sbin and /usr/bin)."""
    for name in candidates:
        found = shutil.which(name) or next(
            (str(p) for d in ("/usr/sbin", "/usr/bin", "/sbin") if (p := Path(d) / name).exists()),
            None,
        )
        if found:
            return found
    raise RuntimeError(f"none of {', '.join(candidates)} is installed (./run tests installs them)")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


class Daemon:
    """One foreground server process; ``ready`` is a port or a path that appears when it listens."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, ready: int | Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.ready = ready
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._listening():
            if self._proc.poll() is not None or time.monotonic() >= deadline:
                tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
                self.stop()
                raise RuntimeError(f"{self.name} did not start ({self.argv}); its log:\n{tail}")
            time.sleep(0.02)

    def _listening(self) -> bool:
        if isinstance(self.ready, Path):
            return self.ready.exists()
        return _accepts(self.ready)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class PrivateServer:
    """A fixture whose program runs from a folder of its own (:attr:`base`), as a
    :class:`Daemon` the subclass makes in its ``__init__``; the folder goes when it stops."""

    _daemon: Daemon

    def __init__(self, name: str) -> None:
        # The programs drop privileges (to nobody): the tree must be traversable, which
        # pytest's 0700 temporary folders are not.
        self.base = Path(tempfile.mkdtemp(prefix=f"postwire-{name}-"))
        self.base.chmod(0o755)

    def __enter__(self: _Server) -> _Server:
        try:
            self._daemon.start()
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._daemon.stop()
        shutil.rmtree(self.base, ignore_errors=True)
