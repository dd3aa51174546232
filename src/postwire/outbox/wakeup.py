"""Waking idle workers when something is put, within milliseconds; polling as the fallback.

- **PostgreSQL**: a put sends ``NOTIFY postwire_outbox`` in its transaction;
  :class:`NotifyListener` keeps a connection that LISTENs.  When the connection breaks
  (the database restarted), it connects and LISTENs again, and wakes the worker once, since
  notifications sent meanwhile are lost (procrastinate issue 1425, pgqueuer issue 224).
- **SQLite** has no notifications: each idle worker binds a Unix datagram socket in a
  folder named after the database file (:func:`wake_folder`), and a put sends one byte
  to every socket there (:func:`nudge_sockets`); a socket nobody reads any more is removed.
- **Polling**: the worker also looks for work every ``poll_interval`` seconds, and at the
  time the next deferred entry is due, so a lost wake-up only delays.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import secrets
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["NotifyListener", "SocketWaker", "nudge_sockets", "wake_folder"]

log = logging.getLogger("postwire.outbox")


def wake_folder(database: Path) -> Path:
    """The folder of wake-up sockets for a SQLite file (short: socket paths are limited)."""
    digest = hashlib.sha256(str(database.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"postwire-wake-{digest}"


def nudge_sockets(folder: Path) -> int:
    """Send one byte to every worker socket in ``folder``; returns how many were nudged."""
    try:
        names = [e.name for e in os.scandir(folder) if e.name.endswith(".sock")]
    except OSError:
        return 0
    if not names:
        return 0
    sent = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for name in names:
            path = folder / name
            try:
                sock.sendto(b"!", str(path))
                sent += 1
            except BlockingIOError:
                sent += 1  # its queue is full: it has been woken already
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    # Nobody reads it (its worker died without cleaning up).
                    with contextlib.suppress(OSError):
                        path.unlink()
    return sent


class SocketWaker:
    """A worker's wake-up socket in a SQLite outbox's folder; calls ``wake`` per nudge."""

    def __init__(self, folder: Path, wake: Callable[[], None]) -> None:
        self.folder = folder
        self._wake = wake
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.path = folder / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(self.path))
        # Any user who may put into the outbox may wake its workers.
        with contextlib.suppress(OSError):
            os.chmod(self.path, 0o666)
        self._sock.settimeout(0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="outbox-wake", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sock.recv(64)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            if self._stop.is_set():
                return
            self._wake()

    def close(self) -> None:
        self._stop.set()
        # Wake our own reader, so that it sees the stop now rather than at its timeout.
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"!", str(self.path))
        with contextlib.suppress(OSError):
            self.path.unlink()
        self._thread.join(2)
        self._sock.close()


class NotifyListener:
    """LISTEN on PostgreSQL in a thread; ``wake`` on each notification and on each reconnect.

    ``connect`` returns a new autocommit psycopg connection.  Waits are bounded: a failed
    connection is tried again after 0.1 s, doubling up to 2 s.
    """

    def __init__(self, connect: Callable[[], object], channel: str, wake: Callable[[], None]):
        self._connect = connect
        self._channel = channel
        self._wake = wake
        self._stop = threading.Event()
        self._conn: object = None
        #: How many times the listener connected (1 + reconnections), for the tests.
        self.connections = 0
        self._thread = threading.Thread(target=self._run, name="outbox-listen", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                conn = self._connect()
                self._conn = conn
                conn.execute(f"LISTEN {self._channel}")  # type: ignore[attr-defined]
                self.connections += 1
                delay = 0.1
                # Notifications sent while we were not listening are gone: look once.
                self._wake()
                while not self._stop.is_set():
                    for _ in conn.notifies(timeout=0.5):  # type: ignore[attr-defined]
                        self._wake()
            except Exception as exc:  # the database went away: listen again
                if self._stop.is_set():
                    return
                log.info("outbox: LISTEN connection lost (%s); reconnecting", exc)
                self._stop.wait(delay)
                delay = min(delay * 2, 2.0)
            finally:
                conn, self._conn = self._conn, None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()  # type: ignore[attr-defined]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(3)
