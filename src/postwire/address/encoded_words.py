"""RFC 2047 encoded-words in header fields: writing them for display names and
unstructured text, and decoding the ones a parsed display name holds.

Decoding reuses the public :func:`email.header.decode_header`.
"""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.header import decode_header

from .._core.chars import CONTROL_EXCEPT_TAB

__all__ = ["ENCODED_WORD", "ENCODED_WORD_RUN", "decode_encoded_word", "encode_words"]

#: One encoded-word (RFC 2047 §2): ``=?charset?B-or-Q?text?=``.
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
#: Encoded-words separated by white space only, as they fill a quoted display name.
ENCODED_WORD_RUN = re.compile(
    r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=(?:[ \t]+=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)*"
)

_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


def encode_words(text: str) -> list[str]:
    """RFC 2047 "Q" encoded-words for ``text``, each at most 75 characters.

    Only the characters allowed in a phrase (§5 rule 3) stay literal, so the
    words are valid in display names and unstructured fields alike.  Words are
    cut between characters, never inside a UTF-8 sequence; readers join
    adjacent encoded-words without the white space between them (§6.2).
    """
    prefix, suffix = "=?utf-8?q?", "?="
    chunks: list[str] = []
    chunk = ""
    for ch in text:
        if ch in _Q_SAFE:
            piece = ch
        elif ch == " ":
            piece = "_"
        else:
            piece = "".join(f"={byte:02X}" for byte in ch.encode("utf-8"))
        if chunk and len(prefix) + len(chunk) + len(piece) + len(suffix) > 75:
            chunks.append(chunk)
            chunk = ""
        chunk += piece
    chunks.append(chunk)
    return [prefix + chunk + suffix for chunk in chunks]


def decode_encoded_word(word: str) -> str | None:
    """Decode one RFC 2047 encoded-word, or ``None`` if it cannot be decoded safely."""
    try:
        chunks = decode_header(word)
        if len(chunks) != 1:
            return None
        raw, charset = chunks[0]
        if not isinstance(raw, bytes) or charset is None:
            return None
        # RFC 2231 §5 allows a language suffix: "utf-8*en".
        text = raw.decode(charset.split("*", 1)[0])
    except (HeaderParseError, ValueError, LookupError):
        return None
    # A decoded CR, LF or NUL would smuggle control characters into headers we
    # write later: keep such words undecoded.
    if CONTROL_EXCEPT_TAB.search(text):
        return None
    return text
