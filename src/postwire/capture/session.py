"""What the capture server remembers of an SMTP session: its transcript and TLS facts.

A session can carry thousands of messages, so the transcript kept for a message is bounded:
the session's opening (greeting, EHLO, STARTTLS, AUTH: what happened before the first MAIL)
and the exchange since the previous message ended. AUTH payloads are never kept (RFC 4954
credentials), and a message's content is replaced by its size.
"""

from __future__ import annotations

__all__ = ["SessionLog"]

#: At most this many lines in each part of a transcript; the rest is counted, not kept.
MAX_LINES = 200
_MAX_LINE = 1000  # characters kept of one line


class SessionLog:
    """The transcript of one SMTP session, as lines ``C: ...`` (client) and ``S: ...`` (server)."""

    def __init__(self) -> None:
        self._opening: list[str] = []
        self._current: list[str] = []
        self._dropped = 0
        self._in_transaction = False
        self.helo: str | None = None

    def _add(self, line: str) -> None:
        target = self._current if self._in_transaction else self._opening
        if len(target) >= MAX_LINES:
            self._dropped += 1
            return
        target.append(line if len(line) <= _MAX_LINE else line[:_MAX_LINE] + "...")

    def client(self, command: str, arg: str | None) -> None:
        """A command line from the client; AUTH arguments are redacted."""
        if command == "MAIL":
            self._in_transaction = True
        if command == "AUTH" and arg:
            mechanism, _, rest = arg.partition(" ")
            arg = mechanism + (" <redacted>" if rest else "")
        if command in ("EHLO", "HELO") and arg:
            self.helo = arg
        self._add(f"C: {command}" + (f" {arg}" if arg else ""))

    def auth_response(self) -> None:
        """A line answering an AUTH challenge: noted, never kept."""
        self._add("C: <redacted>")

    def server(self, reply: str) -> None:
        """A reply line from the server."""
        self._add(f"S: {reply}")

    def note(self, text: str) -> None:
        """An event that is not a line (TLS started, content received)."""
        self._add(f"** {text}")

    def take(self) -> tuple[str, ...]:
        """The transcript for the message just received; the next one starts after it."""
        lines = [*self._opening]
        if self._dropped:
            lines.append(f"** ({self._dropped} lines not kept)")
        lines.extend(self._current)
        self._current = []
        self._dropped = 0
        self._in_transaction = False
        return tuple(lines)
