"""What the command line prints: one-line errors, JSON, transcripts and a progress bar."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from typing import TextIO

from .._core.reply import Reply
from ..errors import SMTPError
from .exits import Exit, exit_code_for

__all__ = [
    "Progress",
    "Transcript",
    "error_json",
    "one_line",
    "print_error",
    "print_json",
    "reply_json",
]

# The transcript line format of postwire.client.transcript: seconds, arrow, text.
_LINE = re.compile(r"^\s*(\d+\.\d+) (->|<-|\*\*) (.*)$")


# The library's hints name its keyword arguments; on the command line they are
# options.  One table, so every error reads in CLI terms (issue 10, item 10).
_HINTS = (
    (re.compile(r"\btls='(\w+)'"), r"--tls \1"),
    (re.compile(r"\ballow_plaintext_auth=True\b"), "--allow-plaintext-auth"),
    (re.compile(r"\bpass the CA with cafile= or an ssl_context that trusts it"), "pass --cafile"),
    (re.compile(r"\bcafile="), "--cafile"),
    (re.compile(r"\btls_fingerprint="), "--tls-fingerprint"),
    (re.compile(r"\bserver_hostname= with that name"), "--server with that name"),
)


def one_line(text: object) -> str:
    """``text`` on one line (a multi-line reply is joined with " / "), hints in CLI terms."""
    line = " / ".join(part for part in str(text).splitlines() if part.strip()) or str(text)
    for pattern, replacement in _HINTS:
        line = pattern.sub(replacement, line)
    return line


def print_error(message: object, stream: TextIO | None = None) -> None:
    """``postwire: MESSAGE`` on stderr, one line."""
    print(f"postwire: {one_line(message)}", file=stream or sys.stderr, flush=True)


def print_json(value: object, stream: TextIO | None = None) -> None:
    """Print ``value`` as indented JSON (UTF-8 kept) on ``stream`` or stdout."""
    print(json.dumps(value, indent=2, ensure_ascii=False), file=stream or sys.stdout, flush=True)


def reply_json(reply: Reply | None) -> dict[str, object] | None:
    """An SMTP reply as JSON-ready data (code, enhanced status, text), or None."""
    if reply is None:
        return None
    status = reply.enhanced_status
    return {
        "code": reply.code,
        "enhanced_status": str(status) if status is not None else None,
        "text": reply.text,
    }


def error_json(exc: BaseException, code: int) -> dict[str, object]:
    """An error as JSON: its type, the step that failed, the text and the server's reply."""
    return {
        "type": type(exc).__name__,
        "step": getattr(exc, "step", "") or None,
        "message": one_line(exc),
        "reply": reply_json(exc.reply) if isinstance(exc, SMTPError) else None,
        "exit_code": code,
    }


class Transcript:
    """Receives :class:`~postwire.Client` transcript lines, prints them and keeps them.

    The lines come from :mod:`postwire.client.transcript` (AUTH payloads already
    redacted): ``"  0.012 -> EHLO host"``, ``<-`` for the server, ``**`` for
    notes.  :meth:`note` adds a note in the same format; make the transcript
    just before the client so that both clocks start together.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self._start = time.monotonic()
        #: Called after the "TLS started" note; its text (if any) becomes another note.
        self.on_tls: Callable[[], str | None] | None = None

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if self.stream is not None:
            print(line, file=self.stream, flush=True)
        if self.on_tls is not None and line.endswith("** TLS started"):
            text = self.on_tls()
            if text:
                self.note(text)

    def note(self, text: str) -> None:
        self(f"{time.monotonic() - self._start:7.3f} ** {text}")

    def _entries(self) -> list[tuple[str, str]]:
        entries = []
        for line in self.lines:
            m = _LINE.match(line)
            if m is not None:
                entries.append((m.group(2), m.group(3)))
        start = 0
        for i, (arrow, text) in enumerate(entries):
            if arrow == "**" and text.startswith("connected to "):
                start = i + 1  # only the last connection counts
        return entries[start:]

    def server_lines(self, after_command: str | None = None) -> list[str]:
        """Reply lines of the last connection: the greeting, or the reply to a command.

        ``after_command=None`` gives the greeting (the lines before the first
        command); ``"EHLO"`` the first reply to EHLO.
        """
        found: list[str] = []
        waiting = after_command is None
        for arrow, text in self._entries():
            if arrow == "->":
                if waiting and found:
                    break
                if after_command is not None and text.upper().startswith(after_command):
                    waiting = True
                continue
            if arrow == "<-" and waiting:
                found.append(text)
        return found


class Progress:
    """A text progress bar on a terminal; otherwise a line every ``period`` seconds."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO | None = None, period: float = 30.0) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.period = period
        self.delivered = 0
        self.failed = 0
        self._last = time.monotonic()
        self._drawn = False

    def update(self, ok: bool) -> None:
        if ok:
            self.delivered += 1
        else:
            self.failed += 1
        done = self.delivered + self.failed
        if self.tty:
            filled = self.WIDTH * done // max(self.total, 1)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            self.stream.write(
                f"\r[{bar}] {done}/{self.total}  delivered {self.delivered}  failed {self.failed}"
            )
            self.stream.flush()
            self._drawn = True
        elif time.monotonic() - self._last >= self.period:
            self._last = time.monotonic()
            print(
                f"postwire: {done}/{self.total} messages, {self.failed} failed",
                file=self.stream,
                flush=True,
            )

    def interrupt(self) -> None:
        """End the bar's line before another line is printed."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def finish(self) -> None:
        self.interrupt()


def report_failure(exc: Exception, *, as_json: bool, extra: dict[str, object] | None = None) -> int:
    """Say why a command failed (stderr, and JSON on stdout when asked); return its exit code.

    An unexpected error (exit 70, a bug) is raised again, so its traceback is seen.
    """
    code = exit_code_for(exc)
    if code == Exit.SOFTWARE:
        raise exc
    print_error(exc)
    if as_json:
        failure = {"ok": False, **(extra or {}), "error": error_json(exc, code)}
        print_json({**failure, "exit_code": code})
    return code
