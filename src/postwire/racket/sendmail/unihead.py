"""RFC 2047 encoding of header text as Racket's ``net/unihead`` does it.

Not :func:`postwire.address.encoded_words.encode_words`: this one keeps
Racket's output (Latin-1 "Q" or UTF-8 "B" words, ASCII runs left at either
end, a cut every 70 bytes), so that the sendmail layer writes what Racket writes.
"""

from __future__ import annotations

import base64
import re

__all__ = ["encode_for_header"]

_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_NON_LATIN1 = re.compile(r"[^\x00-\xff]")
_LINE_PIECE = re.compile(r"[^\r\n]+")
# ASCII without "=" (so nothing that could look like an encoded word), ending in a space.
_ASCII_PREFIX = re.compile(r"([\x00-\x3c\x3e-\x7f]* )(.*)\Z", re.DOTALL)
_ASCII_SUFFIX = re.compile(r"(.*?)( [\x00-\x3c\x3e-\x7f]*)\Z", re.DOTALL)
_PIECE_BYTES = 70  # Racket splits the encoded text every 70 bytes


def _q_encode(data: bytes) -> str:
    # RFC 2047 §4.2 "Q" encoding as Racket produces it: quoted-printable (RFC 2045
    # §6.7) with "_" for a space, and "?" and "_" encoded.  One difference: a TAB
    # is always "=09", where Racket leaves it literal (which breaks the encoded word).
    out: list[str] = []
    last = len(data) - 1
    for i, byte in enumerate(data):
        if byte == 0x20 and i < last:
            out.append("_")
        elif (33 <= byte <= 126) and byte not in (0x3D, 0x3F, 0x5F):
            out.append(chr(byte))
        else:
            out.append(f"={byte:02X}")
    return "".join(out)


def _b_encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _encode_words(text: str) -> str:
    if _NON_LATIN1.search(text):
        charset, kind, encoding = "UTF-8", "B", "utf-8"
    else:
        charset, kind, encoding = "ISO-8859-1", "Q", "latin-1"
    encode = _b_encode if kind == "B" else _q_encode

    def loop(s: str) -> str:
        m = _ASCII_PREFIX.match(s)
        if m:
            return m.group(1) + loop(m.group(2))
        m = _ASCII_SUFFIX.match(s)
        if m:
            return loop(m.group(1)) + m.group(2)
        # RFC 2047 §2 limits an encoded word to 75 characters; like Racket, cut the
        # raw bytes every 70 and fold between the words (sendmail makes "\n" CRLF).
        data = s.encode(encoding)
        pieces = [data[i : i + _PIECE_BYTES] for i in range(0, len(data), _PIECE_BYTES)]
        return "\n ".join(f"=?{charset}?{kind}?{encode(p)}?=" for p in pieces or [b""])

    return loop(text)


def encode_for_header(s: str) -> str:
    """Encode ``s`` for a mail header as Racket's ``net/unihead`` does (RFC 2047).

    ASCII text is returned unchanged.  Otherwise runs of ASCII words at either
    end (next to a space, and without ``=``) stay as they are and the rest
    becomes ``=?ISO-8859-1?Q?...?=`` when it fits in Latin-1, else
    ``=?UTF-8?B?...?=``, one encoded word per 70 bytes, joined by ``"\\n "``.
    Each line of a multi-line string is encoded on its own.
    """
    if not _NON_ASCII.search(s):
        return s
    if "\r" not in s and "\n" not in s:
        return _encode_words(s)
    return _LINE_PIECE.sub(lambda m: _encode_words(m.group()), s)
