"""What every benchmark run shares: servers on 127.0.0.1, workers, messages, statistics.

Every process started here is a child of the benchmark, listens on (or connects to) 127.0.0.1
only, and is stopped by the context manager that started it, with bounded waits.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKER = HERE / "worker.py"
PROXY = HERE / "proxy.py"
HOST = "127.0.0.1"
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"

SENDER = "bench@test.example"
#: Postfix throws mail to this domain away after accepting it (tests/servers/postfix.py).
RECIPIENT = "rcpt@discard.test"

#: The longest any single worker or tool may run before it is killed.
WORKER_TIMEOUT = 600.0


# -- messages -----------------------------------------------------------------------------


def message(index: int, body_size: int = 1024) -> bytes:
    """A message shaped like smtp-source's: From, To, Date, Message-Id and ``body_size`` bytes.

    The body is 78-character lines plus CRLF (smtp-source's ``-l`` counts the body only).
    """
    head = (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\n"
        "Date: Sat, 28 Nov 2026 11:00:00 +0000\r\n"
        f"Message-Id: <{index}.bench@test.example>\r\n\r\n"
    ).encode("ascii")
    line = b"X" * 78 + b"\r\n"
    body = (line * (body_size // len(line) + 1))[: body_size - 2] + b"\r\n"
    return head + body


def write_big_message(path: Path, size: int) -> None:
    """A message file of ``size`` bytes (rounded up to a whole line), written piece by piece.

    One line in a thousand starts with a dot, so DATA clients must dot-stuff (RFC 5321 §4.5.2).
    """
    head = (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: big\r\n"
        "Message-Id: <big@test.example>\r\n\r\n"
    ).encode("ascii")
    line = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ABCDEFGHIJKL\r\n"
    dotted = b"." + line[1:]
    block = b"".join(dotted if i == 0 else line for i in range(1000))
    with path.open("wb") as out:
        out.write(head)
        left = size - len(head)
        while left > 0:  # whole lines only: the file is at most one line longer than size
            whole = min(len(block), -(-left // len(line)) * len(line))
            out.write(block[:whole])
            left -= whole


# -- machine ------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """Facts worth printing next to any figure: CPUs, CPU model, Python, kernel, versions."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = _run_text(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    # _run_text says "unknown" for no output: a clean tree must not read as dirty.
    status = _run_text(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"])
    dirty = status != "unknown"
    postfix = _run_text(["/usr/sbin/postconf", "-d", "-h", "mail_version"])
    try:
        from importlib.metadata import version

        aiosmtplib = version("aiosmtplib")
    except Exception:  # not installed: rows needing it fail on their own
        aiosmtplib = "not installed"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(nproc),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "postwire": f"{commit}{' + uncommitted src changes' if dirty else ''}",
        "postfix": postfix,
        "aiosmtplib": aiosmtplib,
    }


def machine_line(info: dict[str, str]) -> str:
    """The machine facts, plus the load average now (right after a run: how busy it was)."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"Measured {info['date']} on {info['nproc']} CPUs ({info['cpu']}), "
        f"Python {info['python']}, Linux {info['kernel']}; postwire {info['postwire']}, "
        f"Postfix {info['postfix']}, aiosmtplib {info['aiosmtplib']}. Load average at the "
        f"end of the run (1, 5, 15 min): {load}."
    )


def _run_text(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"


# -- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        if time.monotonic() >= deadline:
            raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout} s")
        time.sleep(0.02)


def stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM the process group started for ``proc``, then SIGKILL after ``timeout``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


@dataclass(frozen=True)
class Sink:
    """A running smtp-sink: where it listens and its process id (for its CPU time)."""

    port: int
    pid: int

    def cpu_seconds(self) -> float | None:
        """CPU time smtp-sink has used so far (``/proc/PID/schedstat``, nanoseconds)."""
        return process_cpu(self.pid)


def process_cpu(pid: int) -> float | None:
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def smtp_sink() -> Iterator[Sink]:
    """Postfix's smtp-sink on a free 127.0.0.1 port.

    smtp-sink has no message size limit (it reads and discards whatever comes).
    ``-m`` is its maximum number of simultaneous connections, the last argument the backlog.
    """
    if not os.access(SMTP_SINK, os.X_OK):
        raise RuntimeError(f"{SMTP_SINK} not found: install Debian's postfix package")
    port = free_port()
    cmd = [SMTP_SINK, "-4", "-m", "1024", f"{HOST}:{port}", "1024"]
    if os.geteuid() == 0:
        cmd[1:1] = ["-u", "nobody"]  # as root it refuses to run without -u
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_listening(port, proc)
        yield Sink(port, proc.pid)
    finally:
        stop(proc)


@contextlib.contextmanager
def postfix() -> Iterator[Any]:
    """The project's private Postfix test instance (tests/servers/postfix.py).

    Yields the ``PostfixServer`` (``smtp_port``, ``base``).
    Mail to ``*@discard.test`` is accepted, queued and thrown away by the discard transport.
    """
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from servers.postfix import PostfixServer

    base = Path(tempfile.mkdtemp(prefix="postwire-bench-postfix-"))
    try:
        with PostfixServer(base) as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def delay_proxy(target: int, delay: float) -> Iterator[int]:
    """benchmarks/proxy.py in front of ``127.0.0.1:target``, ``delay`` s each way; its port."""
    proc = subprocess.Popen(
        [sys.executable, str(PROXY), "--target", str(target), "--delay", str(delay)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = _read_line(proc.stdout, 15.0)
        if not line.strip().isdigit():
            raise RuntimeError(f"proxy did not report its port: {line!r}")
        port = int(line)
        wait_listening(port, proc)
        yield port
    finally:
        stop(proc)


def _read_line(stream: Any, timeout: float) -> str:
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise RuntimeError(f"no output within {timeout} s")
    return str(stream.readline())


def _pin(cpus: Collection[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that keeps the child on ``cpus`` (None: wherever the kernel likes)."""
    if cpus is None:
        return None
    chosen = set(cpus)
    return lambda: os.sched_setaffinity(0, chosen)


def run_worker(
    *args: str, wrap: Sequence[str] = (), cpus: Collection[int] | None = None
) -> dict[str, Any]:
    """Run ``worker.py ARGS`` in a fresh interpreter; return the JSON it prints last."""
    cmd = [*wrap, sys.executable, str(WORKER), *args]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
        check=False,
        preexec_fn=_pin(cpus),
    )
    # The last line that is a JSON object (a wrapper such as py-spy may print after it).
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        return {"error": f"worker {' '.join(args)} exited {done.returncode}: {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_tool(cmd: Sequence[str], cpus: Collection[int] | None = None) -> dict[str, Any]:
    """Time an external program (smtp-source) from the outside, with the CPU it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        list(cmd),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
        check=False,
        preexec_fn=_pin(cpus),
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        return {"error": f"{cmd[0]} exited {done.returncode}: {done.stderr.strip()[-300:]}"}
    return {
        "elapsed": elapsed,
        "cpu_user": after.ru_utime - before.ru_utime,
        "cpu_sys": after.ru_stime - before.ru_stime,
    }


# -- statistics and tables ----------------------------------------------------------------


@dataclass
class Series:
    """Repeated measurements of one contender."""

    name: str
    values: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: CPU seconds per message used by the client process (user + system), per run.
    cpu: list[float] = field(default_factory=list)

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu) if self.cpu else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def spread(self) -> str:
        if not self.values:
            return "-"
        return f"{min(self.values):,.0f} to {max(self.values):,.0f}"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(value: float | None, spec: str = ",.0f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(measured: float | None, target: float, *, at_most: bool = False) -> str:
    if measured is None:
        return "not measured"
    met = measured <= target if at_most else measured >= target
    return "met" if met else "NOT met"
