"""Header and body lines to the bytes of a message: :func:`compose_message`."""

from __future__ import annotations

from collections.abc import Iterable

from .fields import validate_header

__all__ = ["compose_message"]


def _preview(value: str | bytes) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def compose_message(
    header: str | bytes,
    lines: Iterable[str | bytes],
    *,
    max_line_length: int | None = None,
) -> bytes:
    """The message as CRLF bytes: ``header`` (validated) then every line + CRLF.

    ``str`` is encoded as UTF-8.  The header must pass :func:`validate_header`
    (checked on its bytes, so a UTF-8 header is fine) and contain no NUL; a
    line containing CR, LF or NUL raises ``ValueError``, as does a line longer
    than ``max_line_length`` octets when given (RFC 5322 §2.1.1 says 998).
    No dot-stuffing: that is the transport's job.
    """
    if isinstance(header, str):
        try:
            raw_header = header.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("compose_message: header contains a lone surrogate") from None
    elif isinstance(header, bytes):
        raw_header = header
    else:
        raise TypeError(f"compose_message: header must be str or bytes, not {type(header)!r}")
    try:
        validate_header(raw_header)
    except ValueError as err:
        raise ValueError(f"compose_message: invalid header: {err}") from None
    if b"\0" in raw_header:
        raise ValueError("compose_message: NUL in header")
    if isinstance(lines, (str, bytes)):
        raise TypeError("compose_message: lines must be an iterable of lines, not one string")
    parts = [raw_header]
    for number, line in enumerate(lines):
        if isinstance(line, str):
            try:
                raw = line.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"compose_message: line {number} has a lone surrogate") from None
        elif isinstance(line, bytes):
            raw = line
        else:
            raise TypeError(f"compose_message: line {number} is {type(line).__name__}")
        if b"\r" in raw or b"\n" in raw:
            raise ValueError(f"compose_message: line {number} contains CR or LF: {_preview(line)}")
        if b"\0" in raw:
            raise ValueError(f"compose_message: line {number} contains NUL: {_preview(line)}")
        if max_line_length is not None and len(raw) > max_line_length:
            raise ValueError(
                f"compose_message: line {number} is longer than {max_line_length} octets"
            )
        parts += (raw, b"\r\n")
    return b"".join(parts)
