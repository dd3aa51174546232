"""An incremental SMTP reply parser (RFC 5321 §4.2).

The parser works on a ``bytearray`` buffer that it consumes from the front, so
feeding a reply whole, one byte at a time or followed by trailing data gives
the same result.  It never raises on 8-bit text: lines are decoded as UTF-8
with replacement characters, because a server's reply text is for people.
"""

from __future__ import annotations

import functools

from .errors import ReplySyntaxError
from .reply import Reply, parse_enhanced_status

__all__ = ["DEFAULT_MAX_LINE_LENGTH", "DEFAULT_MAX_REPLY_SIZE", "ReplyParser"]

# RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets, but real servers send
# longer EHLO lines (long AUTH lists, banners).  We allow 8 KiB a line and
# 256 KiB a reply: generous for any honest server, bounded for a hostile one.
DEFAULT_MAX_LINE_LENGTH = 8192
DEFAULT_MAX_REPLY_SIZE = 256 * 1024


class ReplyParser:
    """Collects bytes and cuts them into :class:`Reply` objects.

    ``feed`` appends bytes; ``next_reply`` returns the next complete reply or
    ``None`` when more bytes are needed.  Errors raise
    :class:`ReplySyntaxError` and leave the parser unusable: after a framing
    error nothing that follows can be trusted to pair with a command.
    """

    __slots__ = (
        "_buf",
        "_code",
        "_lines",
        "_pos",
        "_size",
        "max_line_length",
        "max_reply_size",
    )

    def __init__(
        self,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_reply_size: int = DEFAULT_MAX_REPLY_SIZE,
    ) -> None:
        self._buf = bytearray()
        # Parsed up to here; the buffer is compacted when it runs dry, so a
        # burst of pipelined replies costs no repeated memmove.
        self._pos = 0
        self._lines: list[str] = []
        self._code = 0
        self._size = 0
        self.max_line_length = max_line_length
        self.max_reply_size = max_reply_size

    @property
    def buffered(self) -> int:
        """How many received bytes have not yet been parsed into a reply."""
        return len(self._buf) - self._pos + self._size

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_reply(self, command: str = "") -> Reply | None:
        """The next complete reply (tagged with ``command``), or None if more bytes are needed."""
        buf = self._buf
        pos = self._pos
        limit = self.max_line_length
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                if len(buf) - pos > limit:
                    raise ReplySyntaxError(f"reply line longer than {limit} bytes")
                del buf[:pos]
                self._pos = 0
                return None
            if nl - pos > limit:
                raise ReplySyntaxError(f"reply line longer than {limit} bytes")
            # RFC 5321 §2.3.8 says CRLF, but bare LF is tolerated (lenient
            # receiver, RFC 5321 §4.1.1.4 spirit); a CR before the LF is dropped.
            end = nl - 1 if nl > pos and buf[nl - 1] == 0x0D else nl
            raw = bytes(buf[pos:end])
            self._size += nl + 1 - pos
            pos = self._pos = nl + 1
            if self._size > self.max_reply_size:
                raise ReplySyntaxError(f"reply longer than {self.max_reply_size} bytes")
            n = len(raw)
            if not self._lines and (n == 3 or (3 < n <= _CACHED_LINE and raw[3] == 0x20)):
                # A short single-line reply: servers repeat these ("250 2.1.0 Ok").
                self._size = 0
                if pos == len(buf):
                    buf.clear()
                    self._pos = 0
                return _single_line_reply(raw, command)
            code, more, text = _split_line(raw)
            if self._lines and code != self._code:
                raise ReplySyntaxError(
                    f"multi-line reply changed its code from {self._code} to {code}"
                )
            if not more and not self._lines:  # the common single-line reply
                self._size = 0
                if pos == len(buf):
                    buf.clear()
                    self._pos = 0
                return Reply(code, (text,), parse_enhanced_status(code, text), command)
            self._code = code
            self._lines.append(text)
            if more:
                continue
            lines = tuple(self._lines)
            self._lines = []
            self._size = 0
            return Reply(code, lines, parse_enhanced_status(code, lines[0]), command)


#: Single-line replies up to this length are parsed once and remembered.
_CACHED_LINE = 128


@functools.lru_cache(maxsize=256)
def _single_line_reply(raw: bytes, command: str) -> Reply:
    code, _, text = _split_line(raw)
    return Reply(code, (text,), parse_enhanced_status(code, text), command)


def _split_line(raw: bytes) -> tuple[int, bool, str]:
    """Split one reply line into (code, more-follows, text)."""
    if len(raw) < 3 or not raw[:3].isdigit():
        shown = raw[:80].decode("utf-8", "replace")
        raise ReplySyntaxError(f"not an SMTP reply line: {shown!r}")
    code = int(raw[:3])
    if code < 200 or code > 599:
        raise ReplySyntaxError(f"reply code {code} out of range")
    if len(raw) == 3:
        # A bare "250" ends a reply (Racket crashed on it; we do not).
        return code, False, ""
    sep = raw[3]
    if sep == 0x2D:  # "-"
        more = True
    elif sep == 0x20:  # " "
        more = False
    else:
        shown = raw[:80].decode("utf-8", "replace")
        raise ReplySyntaxError(f"bad separator after reply code: {shown!r}")
    return code, more, raw[4:].decode("utf-8", "replace")
