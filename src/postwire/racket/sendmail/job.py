"""One running sendmail process: bounded writes to its stdin, a bounded wait for its exit.

Its stderr goes to a temporary file, so a chatty sendmail never blocks on a
full pipe; a failure raises :class:`~postwire.errors.SendmailError` with the
exit status and that text.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import tempfile
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from ...errors import SendmailError
from .program import checked_program, find_sendmail

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["SendmailJob", "start_sendmail"]

_KILL_WAIT = 5.0  # seconds to wait for a killed sendmail to be reaped
_STDERR_LIMIT = 64 * 1024  # bytes of sendmail's stderr kept for the error text


def _fail_text(program: str, returncode: int) -> str:
    if returncode < 0:
        return f"sendmail failed: {program} was killed by signal {-returncode}"
    return f"sendmail failed: {program} exited with status {returncode}"


class SendmailJob:
    """One running sendmail: bounded writes to its stdin, a bounded wait for its exit."""

    def __init__(self, argv: list[str], timeout: float | None) -> None:
        self.program = argv[0]
        self.timeout = timeout
        self.aborted = False
        self._finished = False
        # stderr goes to a file, not a pipe: a chatty sendmail can never block on it.
        # It lives as long as the job, so no ``with`` block; finish() or _kill() closes it.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
            )
        except OSError as exc:
            self._stderr.close()
            reason = exc.strerror or str(exc)
            raise SendmailError(f"cannot run sendmail program {self.program!r}: {reason}") from exc
        assert self._proc.stdin is not None
        self._stdin = self._proc.stdin
        self._fd = self._stdin.fileno()
        self._selector: selectors.BaseSelector | None = None
        if os.name == "posix":
            # Non-blocking writes after a readiness wait: a stuck sendmail cannot hang us.
            os.set_blocking(self._fd, False)
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._fd, selectors.EVENT_WRITE)

    def write_some(self, data: ReadableBuffer) -> int:
        """Write part of ``data`` to sendmail's stdin; return how many bytes went."""
        view = memoryview(data).cast("B")
        if self.aborted or self._finished:
            # Thrown away (aborted), or sendmail is gone and its error already raised:
            # a later flush must neither write to a closed descriptor nor raise again.
            return len(view)
        if not view:
            return 0
        try:
            while True:
                self._wait_writable()
                try:
                    return os.write(self._fd, view)
                except BlockingIOError:  # pragma: no cover - the pipe filled up meanwhile
                    continue
        except BrokenPipeError as exc:
            # sendmail went away before reading everything: report why.
            self._close_stdin()
            self.finish()
            raise SendmailError(
                f"sendmail failed: {self.program} exited before reading the whole message"
            ) from exc

    def _wait_writable(self) -> None:
        if self._selector is not None and not self._selector.select(self.timeout):
            self._kill()
            raise SendmailError(
                f"sendmail timed out: {self.program} did not read its input within {self.timeout} s"
            )

    def _close_stdin(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if not self._stdin.closed:
            self._stdin.close()

    def _kill(self) -> None:
        self._finished = True
        self.aborted = True
        self._close_stdin()
        self._proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):  # an unkillable process
            self._proc.wait(_KILL_WAIT)
        self._stderr.close()

    def abort(self) -> None:
        """Kill sendmail before it sees the end of its input, so nothing is sent."""
        if not self._finished:
            self._kill()

    def finish(self) -> None:
        """Close sendmail's stdin, wait for it to exit, and raise if it failed."""
        if self._finished:
            return
        self._close_stdin()
        try:
            returncode = self._proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise SendmailError(
                f"sendmail timed out: {self.program} did not exit within {self.timeout} s"
            ) from None
        self._finished = True
        try:
            if returncode != 0:
                self._stderr.seek(0)
                stderr = self._stderr.read(_STDERR_LIMIT).decode("utf-8", "replace").strip()
                message = _fail_text(self.program, returncode)
                if stderr:
                    message += ": " + stderr
                raise SendmailError(message, returncode=returncode, stderr=stderr)
        finally:
            self._stderr.close()


def start_sendmail(
    program: str | os.PathLike[str] | None, args: Sequence[str], timeout: float | None
) -> SendmailJob:
    """Run ``program`` (or the one :func:`.program.find_sendmail` finds) with ``args``."""
    path = find_sendmail() if program is None else checked_program(program)
    assert path is not None
    return SendmailJob([os.fspath(path), *args], timeout)
