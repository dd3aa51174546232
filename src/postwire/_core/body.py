"""Framing of message content for DATA (RFC 5321 §4.1.1.4) or BDAT (RFC 3030).

A body encoder is fed the content chunk by chunk by a driver and returns the
bytes to write.  ``finish`` returns the bytes that complete the message (the
final ``.`` or the ``BDAT n LAST`` chunk): a driver must not call it before
the message is meant to be delivered, which is what makes cancellation safe.
``replies`` says how many replies the server owes for what was framed.
"""

from __future__ import annotations

from .connection import SMTPConnection
from .encoding import LineNormalizer

__all__ = ["BdatBody", "BodyEncoder", "DataBody"]

#: Default BDAT chunk size.  A chunk is held in memory while it fills, so
#: this bounds the memory a streamed message needs (1 MiB).
BDAT_CHUNK_SIZE = 1 << 20


class BodyEncoder:
    """Interface of :class:`DataBody` and :class:`BdatBody`."""

    replies = 0

    def feed(self, chunk: bytes) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        raise NotImplementedError


class DataBody(BodyEncoder):
    """Dot-stuffed content after a 354 reply; the ``.`` is owed ``replies`` replies.

    One for SMTP; for LMTP one per accepted recipient (RFC 2033 §4.2).
    """

    def __init__(self, conn: SMTPConnection, replies: int = 1) -> None:
        self._conn = conn
        self._owed = replies

    def feed(self, chunk: bytes) -> bytes:
        return self._conn.send_data(chunk)

    def finish(self) -> bytes:
        self.replies = self._owed
        return self._conn.end_data(self._owed)


class BdatBody(BodyEncoder):
    """Content as BDAT chunks; every chunk is answered by one reply.

    Content is collected until ``chunk_size`` bytes are held, then sent as a
    non-final chunk; ``finish`` sends what is left with ``LAST``.
    """

    def __init__(
        self, conn: SMTPConnection, chunk_size: int = BDAT_CHUNK_SIZE, *, normalize: bool = True
    ) -> None:
        self._conn = conn
        self._buf = bytearray()
        # BODY=BINARYMIME content travels as it is (RFC 3030 §3); anything
        # else gets CRLF line endings, as DATA would.
        self._norm = LineNormalizer() if normalize else None
        self.chunk_size = chunk_size

    def feed(self, chunk: bytes) -> bytes:
        self._buf += self._norm.feed(chunk) if self._norm is not None else chunk
        if len(self._buf) < self.chunk_size:
            return b""
        data = bytes(self._buf)
        self._buf.clear()
        self.replies += 1
        return self._conn.send_chunk(data, last=False)

    def finish(self) -> bytes:
        if self._norm is not None:
            self._buf += self._norm.finish()
        data = bytes(self._buf)
        self._buf.clear()
        self.replies += 1
        return self._conn.send_chunk(data, last=True)
