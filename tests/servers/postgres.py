"""A private PostgreSQL 15 (Debian's ``postgresql`` package) on 127.0.0.1, run by the tests.

``initdb`` in a temporary folder, ``pg_ctl start`` listening on 127.0.0.1 and a private
socket folder, one database per test (:meth:`PostgresServer.database`), ``pg_ctl restart -m
immediate`` for the crash tests, ``pg_ctl stop -m fast`` at the end.  PostgreSQL refuses to
run as root: as root, every server command runs as the ``postgres`` user the package
creates (``runuser -u postgres --``), and the folders belong to it.  Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

__all__ = ["BIN", "PostgresServer", "free_port", "postgres_available"]


def _bin() -> Path:
    """The newest installed PostgreSQL's programs (Debian 12: /usr/lib/postgresql/15/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


BIN = _bin()
#: The superuser made by initdb (authentication is "trust" on 127.0.0.1 only).
USER = "outbox"


def postgres_available() -> bool:
    return (BIN / "initdb").exists() and (BIN / "pg_ctl").exists()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A throw-away PostgreSQL cluster under ``base`` (which must not exist yet or be empty)."""

    def __init__(self, base: Path, *, fsync: bool = False, start_timeout: int = 60) -> None:
        self.base = Path(base)
        self.data = self.base / "data"
        self.sock = self.base / "sock"
        self.log = self.base / "postgres.log"
        self.fsync = fsync
        self.start_timeout = start_timeout
        self.port = 0
        self._as_postgres = os.geteuid() == 0
        self._started = False
        self._databases = 0

    # -- commands ----------------------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()}\n"
                f"log ends:\n{self.log_tail()}"
            )
        return done

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _options(self) -> str:
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-p {self.port}",
            f"-k {self.sock}",
            "-c max_connections=300",
            "-c shared_buffers=64MB",
        ]
        if not self.fsync:
            # Only processes crash in these tests (never the machine): a commit still reaches
            # the kernel before it returns, it is just not synced to the disk.  Never
            # synchronous_commit=off: then a restart -m immediate loses committed transactions.
            options += ["-c fsync=off", "-c full_page_writes=off"]
        return " ".join(options)

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        if not postgres_available():
            raise RuntimeError(
                "PostgreSQL 15 is not installed: `./run tests` installs Debian's postgresql"
            )
        self.base.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(exist_ok=True)
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            for path in (self.base, self.sock):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self.base.chmod(0o755)
        if not self.data.exists():
            self._run(
                str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", USER,
                "-E", "UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
        for attempt in range(3):
            self.port = free_port()
            try:
                self._ctl("start")
                break
            except RuntimeError:
                if attempt == 2 or "in use" not in self.log_tail(5):
                    raise
        self._started = True

    def _ctl(self, action: str, *extra: str) -> None:
        self._run(
            str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
            "-t", str(self.start_timeout), "-o", self._options(), action, *extra,
        )  # fmt: skip

    def restart(self, mode: str = "immediate") -> None:
        """``pg_ctl restart -m MODE``: with ``immediate``, every backend dies at once and the
        server recovers from its WAL on start (a crash of the database's processes)."""
        self._ctl("restart", "-m", mode)

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._run(
                str(BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "30", "stop", "-m", "fast",
                timeout=40,
            )  # fmt: skip

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------------------------

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def database(self, prefix: str = "t") -> str:
        """A new, empty database; returns its URL."""
        self._databases += 1
        name = f"{prefix}{os.getpid()}_{self._databases}"
        self._run(str(BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name)
        return self.url(name)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the server accepts connections (after a restart done elsewhere)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = subprocess.run(
                [str(BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                timeout=10,
            )
            if done.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"PostgreSQL on port {self.port} not ready in {timeout} s")


def remove(base: Path) -> None:
    shutil.rmtree(base, ignore_errors=True)
