"""Message data encoding: line endings and dot-stuffing, incrementally.

RFC 5321 §2.3.8 allows only CRLF as a line ending in the data, and §4.5.2
wants a "." added in front of every line that starts with one.  A bare CR or
LF is never passed through: it is turned into CRLF.  Servers disagree on what
a bare LF means, and that disagreement is what SMTP smuggling exploits
(``<LF>.<CR><LF>``), so the client settles it before the bytes leave.

:class:`DotStuffer` works chunk by chunk with constant state, so a message of
any size can be streamed through it.
"""

from __future__ import annotations

__all__ = ["DotStuffer", "LineNormalizer", "normalize_line_endings"]


def normalize_line_endings(data: bytes) -> bytes:
    """Every bare CR and bare LF in ``data`` turned into CRLF."""
    crlf = data.count(b"\r\n")
    if crlf == data.count(b"\n") and crlf == data.count(b"\r"):
        return data  # already clean CRLF text (the usual case): no copy
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data.replace(b"\n", b"\r\n")


class LineNormalizer:
    """Incremental :func:`normalize_line_endings` for streamed content.

    A CR at the end of a chunk may be the first half of a CRLF split across
    chunks: it is held back until the next chunk (or ``finish``) tells.
    """

    __slots__ = ("_cr_pending",)

    def __init__(self) -> None:
        self._cr_pending = False

    def feed(self, chunk: bytes) -> bytes:
        data = bytes(chunk)
        if self._cr_pending:
            data = b"\r" + data
            self._cr_pending = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._cr_pending = True
        crlf = data.count(b"\r\n")
        if crlf == data.count(b"\n") and crlf == data.count(b"\r"):
            return data  # the usual case, inlined: this runs for every chunk
        return normalize_line_endings(data)

    def finish(self) -> bytes:
        """A CR still held back is a line break of its own: CRLF."""
        if self._cr_pending:
            self._cr_pending = False
            return b"\r\n"
        return b""


class DotStuffer(LineNormalizer):
    """Turns message content into DATA bytes, one chunk at a time.

    ``feed`` returns the encoded bytes for a chunk (CRLF line endings, a "."
    doubled at the start of a line, RFC 5321 §4.5.2); ``finish`` returns what
    is still owed (a pending CR, a final CRLF if the content did not end with
    one) followed by the terminating ``.CRLF``.
    """

    __slots__ = ("_at_line_start", "bytes_in")

    def __init__(self) -> None:
        self._cr_pending = False
        self._at_line_start = True
        #: Content bytes fed so far (before encoding).
        self.bytes_in = 0

    def feed(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        self.bytes_in += len(chunk)
        data = LineNormalizer.feed(self, chunk)
        if not data:
            return b""
        if b"\n." in data:
            data = data.replace(b"\n.", b"\n..")
        if self._at_line_start and data[:1] == b".":
            data = b"." + data
        self._at_line_start = data.endswith(b"\n")
        return data

    def finish(self) -> bytes:
        """The end of the content and the final ``.`` line."""
        tail = LineNormalizer.finish(self)
        if tail or not self._at_line_start:
            self._at_line_start = True
            return b"\r\n.\r\n"
        return b".\r\n"
