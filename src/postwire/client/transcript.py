"""Transcripts and logging of the SMTP exchange, with credentials hidden.

Every line goes to the ``postwire.transcript`` logger at DEBUG level and, when
given, to a callback.  Lines look like swaks': ``"-> "`` for what the client
sent, ``"<- "`` for the server, ``"** "`` for notes such as "TLS started",
each prefixed with the seconds since the tracer was made.  AUTH payloads are
replaced by ``<redacted>``; message content is summarised, not copied.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .._core.reply import Reply

__all__ = ["Tracer"]

logger = logging.getLogger("postwire.transcript")


class Tracer:
    """Formats transcript lines; costs almost nothing when nobody listens."""

    __slots__ = ("_callback", "_data_bytes", "_enabled", "_start")

    def __init__(self, callback: Callable[[str], None] | None = None) -> None:
        self._callback = callback
        self._start = time.monotonic()
        self._data_bytes = 0
        self._enabled = callback is not None or logger.isEnabledFor(logging.DEBUG)

    @property
    def enabled(self) -> bool:
        # logging caches isEnabledFor per level, so this stays cheap.
        return self._enabled or logger.isEnabledFor(logging.DEBUG)

    def _emit(self, arrow: str, text: str) -> None:
        line = f"{time.monotonic() - self._start:7.3f} {arrow} {text}"
        if self._callback is not None:
            self._callback(line)
        logger.debug("%s", line)

    def note(self, text: str) -> None:
        if self.enabled:
            self._emit("**", text)

    def sent(self, data: bytes, secret: bool = False) -> None:
        if not self.enabled:
            return
        for line in data.decode("utf-8", "replace").split("\r\n"):
            if not line:
                continue
            if secret:
                verb, _, rest = line.partition(" ")
                if verb.upper() == "AUTH" and rest:
                    mech, _, payload = rest.partition(" ")
                    line = f"AUTH {mech} <redacted>" if payload else f"AUTH {mech}"
                else:
                    line = "<redacted>"
            self._emit("->", line)

    def sent_data(self, data: bytes, end: bool = False) -> None:
        if not self.enabled:
            return
        self._data_bytes += len(data)
        if end:
            self._emit("->", f"<message content, {self._data_bytes} bytes on the wire>")
            self._data_bytes = 0

    def received_raw(self, data: bytes) -> None:
        if not data and self.enabled:
            self._emit("**", "connection closed by server")

    def received(self, reply: Reply) -> None:
        if not self.enabled:
            return
        last = len(reply.lines) - 1
        for i, line in enumerate(reply.lines):
            self._emit("<-", f"{reply.code}{'-' if i < last else ' '}{line}".rstrip())
