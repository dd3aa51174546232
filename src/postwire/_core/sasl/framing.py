"""The base64 framing of SASL payloads on SMTP lines (RFC 4954 §4)."""

from __future__ import annotations

import base64
import binascii

from ..errors import SASLError

__all__ = ["CANCEL", "decode_challenge", "encode_payload", "encode_response"]

#: The line a client sends to abandon an exchange (RFC 4954 §4).
CANCEL = "*"


def encode_payload(data: bytes) -> str:
    """Base64 for the initial response on the AUTH line.

    An empty initial response is sent as ``=`` (RFC 4954 §4), so that it
    differs from no initial response at all.
    """
    return base64.b64encode(data).decode("ascii") or "="


def encode_response(data: bytes) -> str:
    """Base64 for a line answering a 334 challenge.

    Unlike :func:`encode_payload`, an empty response is an empty line: the
    ``=`` form exists only for the AUTH line (RFC 4954 §4 and §8 grammar).
    """
    return base64.b64encode(data).decode("ascii")


def decode_challenge(text: str) -> bytes:
    """Decode the text of a 334 reply; surrounding whitespace is ignored.

    Raises :class:`SASLError` on anything but strict base64 (RFC 4954 §4: a
    client that cannot decode a challenge must cancel).
    """
    stripped = text.strip()
    if stripped in ("", "="):
        return b""  # "334 " is an empty challenge; tolerate the "=" form too
    try:
        raw = stripped.encode("ascii")
    except UnicodeEncodeError:
        raise SASLError("server challenge is not base64 (non-ASCII text)") from None
    try:
        return base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise SASLError("server challenge is not valid base64") from None
