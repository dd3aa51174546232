"""Racket ``net/head``'s header functions on ``str`` and ``bytes`` headers.

Private: import these names from :mod:`postwire.head`.

A *header* is CRLF-terminated lines (folded lines start with white space)
followed by one more CRLF.  Every function that takes a header works on ``str``
or ``bytes``; its other text arguments must be of the same type.  Internally a
``bytes`` header is decoded as Latin-1 (a lossless byte-to-code-point map), the
``str`` algorithm runs, and the result is encoded back, so both types share one
implementation with identical results.

Racket's regexps differ from Python's: ``.`` matches newlines (``re.DOTALL``),
``$`` is the end of the string (``\\Z``), and with a start offset ``^`` matches
at the offset (so we use ``pattern.match(s, pos)`` where Racket has ``^``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import AnyStr

from .addresses import assemble_address_field

__all__ = [
    "append_headers",
    "data_lines_to_data",
    "empty_header",
    "extract_all_fields",
    "extract_field",
    "insert_field",
    "remove_field",
    "replace_field",
    "standard_message_header",
    "validate_header",
]

CRLF = "\r\n"

#: The empty header.  Racket's code defines it as CRLF; its docs wrongly say CRLF CRLF.
empty_header = CRLF

# validate-header's re:field-start and re:continue.  \x01-\x1a is Racket's \001-\032.
_FIELD_START = re.compile(r'[^ \t\n\r\v:\x01-\x1a"]*:')
_CONTINUE = re.compile(r"[ \t\v]")
_NON_LATIN1 = re.compile(r"[^\x00-\xff]")

# Where a field's value ends: at the next line that looks like a field start.
# Racket's class is [^: \r\n"]; fix 1 adds TAB, so a TAB-folded continuation
# line is a continuation even if it contains a colon (RFC 5322 §2.2.3: any WSP folds).
_NEXT_FIELD = re.compile(r'\r\n[^: \t\r\n"]*:')

# extract-all-fields' field regexp (^|\r\n)(([^\r\n:"]*): *), split into its
# two alternatives; fix 2 skips TABs as well as spaces after the colon.
_ANY_FIELD_HERE = re.compile(r'([^\r\n:"]*):[ \t]*')
_ANY_FIELD_AFTER_CRLF = re.compile(r'\r\n([^\r\n:"]*):[ \t]*')


# ---------------------------------------------------------------------------
# str / bytes plumbing


def _header_text(header: object, func: str) -> tuple[str, bool]:
    """Return (header as str, is_bytes) or raise TypeError."""
    if isinstance(header, bytes):
        return header.decode("latin-1"), True
    if isinstance(header, str):
        return header, False
    raise TypeError(_contract(func, "str or bytes header", header))


def _arg_text(value: object, is_bytes: bool, func: str, what: str) -> str:
    """A text argument that must have the header's type."""
    if is_bytes:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        raise TypeError(_contract(func, f"bytes {what} for bytes header", value))
    if isinstance(value, str):
        return value
    raise TypeError(_contract(func, f"string {what} for string header", value))


def _back(text: str, like: AnyStr) -> AnyStr:
    """Give ``text`` the type of ``like`` (the inverse of the Latin-1 decoding)."""
    if isinstance(like, bytes):
        return text.encode("latin-1")
    return text


def _contract(func: str, expected: str, given: object) -> str:
    # Racket's raise-argument-error layout, with the Python function name (fix 5).
    return f"{func}: contract violation\n  expected: {expected}\n  given: {given!r}"


def _racket_write(text: str, is_bytes: bool) -> str:
    """A quoted rendering like Racket's ``~s``."""
    if is_bytes:
        return repr(text.encode("latin-1"))
    return json.dumps(text, ensure_ascii=False)


@functools.lru_cache(maxsize=256)
def _field_regex(field: str, is_bytes: bool) -> re.Pattern[str]:
    # Racket: (^|[\r][\n])((?i:FIELD): *), with [ \t]* since racket/racket#4508.
    # The pattern is a *string* regexp even for a bytes header; Racket matches it
    # against the bytes as UTF-8, so letters beyond ASCII fold by case there too.
    name = _utf8_folding(field) if is_bytes else re.escape(field)
    flags = re.ASCII if is_bytes else 0
    return re.compile(r"(?:\A|\r\n)((?i:" + name + r"):[ \t]*)", flags)


def _utf8_folding(field: str) -> str:
    """A pattern for ``field`` (bytes seen as Latin-1 text) that folds UTF-8 letters by case.

    The header is searched as Latin-1 text, one character per byte, so a
    non-ASCII letter is matched as the alternatives of its UTF-8 bytes in
    each case; a field that is not UTF-8 is matched byte for byte.
    """
    try:
        text = field.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return re.escape(field)
    parts = []
    for ch in text:
        if ch.isascii():
            parts.append(re.escape(ch))
            continue
        forms = sorted({ch, ch.lower(), ch.upper()} - {""})
        encoded = (re.escape(f.encode("utf-8").decode("latin-1")) for f in forms)
        parts.append("(?:" + "|".join(encoded) + ")")
    return "".join(parts)


def _strip_final_blank(rest: str) -> str:
    # (regexp-replace #rx"\r\n\r\n$" s ""): one trailing CRLF CRLF goes.
    return rest[:-4] if rest.endswith("\r\n\r\n") else rest


# ---------------------------------------------------------------------------
# validate_header


def validate_header(candidate: str | bytes) -> None:
    """Raise ``ValueError`` unless ``candidate`` is a well-formed header.

    Racket's checks: every line starts a field (``name:``) or continues one
    (space, TAB or VT), lines end in CRLF, and the header ends with a blank
    line; a ``str`` header must be Latin-1.  Fix 4 adds: no empty field name,
    no bare CR or LF inside a line.
    """
    text, is_bytes = _header_text(candidate, "validate_header")
    if not is_bytes:
        bad = _NON_LATIN1.search(text)
        if bad is not None:
            ch = bad.group()
            raise ValueError(
                f"validate_header: non-Latin-1 character in string: {ch!r} (U+{ord(ch):04X})"
            )
    length = len(text)
    offset = 0
    while not (offset + 2 == length and text.endswith(CRLF)):
        if offset == length:
            raise ValueError("validate_header: missing ending CRLF")
        if _FIELD_START.match(text, offset) or _CONTINUE.match(text, offset):
            end = text.find(CRLF, offset)
            if end < 0:
                raise ValueError("validate_header: missing ending CRLF")
            offset = end + 2
        else:
            rest = _racket_write(text[offset:], is_bytes)
            raise ValueError(f"validate_header: ill-formed header at {rest}")
    # Fix 4, checked only once Racket's loop has accepted the header, so every
    # input Racket rejects is rejected with Racket's message.
    offset = 0
    for line in text[:-2].split(CRLF)[:-1]:
        if "\r" in line or "\n" in line:
            at = _racket_write(text[offset:], is_bytes)
            raise ValueError(f"validate_header: bare CR or LF inside a line at {at}")
        if line.startswith(":"):
            at = _racket_write(text[offset:], is_bytes)
            raise ValueError(f"validate_header: empty field name at {at}")
        offset += len(line) + 2


# ---------------------------------------------------------------------------
# extract / insert / replace / remove


def extract_field(field: AnyStr, header: AnyStr) -> AnyStr | None:
    """The value of the first ``field`` (case-insensitive) in ``header``, or ``None``.

    Spaces and TABs after the colon are skipped; folds inside the value are kept.
    """
    text, is_bytes = _header_text(header, "extract_field")
    name = _arg_text(field, is_bytes, "extract_field", "field")
    found = _field_regex(name, is_bytes).search(text)
    if found is None:
        return None
    rest = text[found.end() :]
    stop = _NEXT_FIELD.search(rest)
    value = rest[: stop.start()] if stop else _strip_final_blank(rest)
    return _back(value, header)


def _display(value: object, is_bytes: bool, func: str) -> str:
    """``insert_field``'s value: Racket's ``~a`` displays any value in a string header."""
    if is_bytes or isinstance(value, bytes) or value is None:
        return _arg_text(value, is_bytes, func, "value")
    return value if isinstance(value, str) else str(value)


def insert_field(field: AnyStr, value: AnyStr, header: AnyStr) -> AnyStr:
    """Prepend the line ``field: value`` to ``header`` (no validation, no folding)."""
    text, is_bytes = _header_text(header, "insert_field")
    name = _arg_text(field, is_bytes, "insert_field", "field")
    data = _display(value, is_bytes, "insert_field")
    return _back(f"{name}: {data}{CRLF}{text}", header)


def replace_field(field: AnyStr, value: AnyStr | None, header: AnyStr) -> AnyStr:
    """Replace the first ``field`` in place (with its folds) by ``field: value``.

    The name takes the case of ``field``.  A missing field is prepended.  With
    ``value=None`` the first occurrence is removed (see :func:`remove_field`).
    """
    return _replace(field, value, header, "replace_field")


def remove_field(field: AnyStr, header: AnyStr) -> AnyStr:
    """Remove the first ``field`` (case-insensitive), with its continuation lines."""
    return _replace(field, None, header, "remove_field")


def _replace(field: AnyStr, value: AnyStr | None, header: AnyStr, func: str) -> AnyStr:
    text, is_bytes = _header_text(header, func)
    name = _arg_text(field, is_bytes, func, "field")
    data = None if value is None else _display(value, is_bytes, func)
    found = _field_regex(name, is_bytes).search(text)
    if found is None:
        result = text if data is None else f"{name}: {data}{CRLF}{text}"
        return _back(result, header)
    pre = text[: found.start(1)]
    after = text[found.end(1) :]
    stop = _NEXT_FIELD.search(after)
    rest = after[stop.start() + 2 :] if stop else empty_header
    new = rest if data is None else f"{name}: {data}{CRLF}{rest}"
    return _back(pre + new, header)


def extract_all_fields(header: AnyStr) -> list[tuple[AnyStr, AnyStr]]:
    """Every field as ``(name, value)``, in order, keeping case and duplicates.

    Leading lines without a colon are skipped; a malformed header gives ``[]``.
    """
    text, _ = _header_text(header, "extract_all_fields")
    fields: list[tuple[AnyStr, AnyStr]] = []
    pos = 0
    while True:
        found = _ANY_FIELD_HERE.match(text, pos) or _ANY_FIELD_AFTER_CRLF.search(text, pos)
        if found is None:
            return fields
        name = found.group(1)
        start = found.end()
        stop = _NEXT_FIELD.search(text, start)
        if stop is None:
            value = _strip_final_blank(text[start:])
            fields.append((_back(name, header), _back(value, header)))
            return fields
        fields.append((_back(name, header), _back(text[start : stop.start()], header)))
        pos = stop.start()


def append_headers(a: AnyStr, b: AnyStr) -> AnyStr:
    """``a`` without its last two characters (its final CRLF), then ``b``."""
    text, is_bytes = _header_text(a, "append_headers")
    other = _arg_text(b, is_bytes, "append_headers", "second header")
    if len(text) < 2:
        raise ValueError(f"append_headers: first argument is not a header: {a!r}")
    return _back(text[:-2] + other, a)


# ---------------------------------------------------------------------------
# building headers (strings only, as in Racket)

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _quotient(a: int, b: int) -> int:
    """Racket's ``quotient``: division truncated toward zero."""
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def rfc2822_date(now: datetime | None = None) -> str:
    """Racket's ``date->string`` in ``'rfc2822`` format, e.g. ``Wed, 5 Aug 2026 09:31:58 -0600``.

    The day is not zero-padded.  ``now`` defaults to the current local time; a
    naive value is taken as local time, an aware one keeps its UTC offset.
    """
    if now is None:
        now = datetime.now().astimezone()
    elif now.utcoffset() is None:
        now = now.astimezone()
    offset = now.utcoffset()
    delta = int(offset.total_seconds()) if offset is not None else 0
    hours = _quotient(delta, 3600)
    minutes = _quotient(delta, 60) % 60  # Racket's modulo: right for -03:30 zones too
    sign = "-" if delta < 0 else "+"
    return (
        f"{_DAYS[now.weekday()]}, {now.day} {_MONTHS[now.month - 1]} {now.year} "
        f"{now:%H:%M:%S} {sign}{abs(hours):02d}{minutes:02d}"
    )


def _string_list(values: object, func: str, what: str) -> list[str]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(_contract(func, f"a list of strings for {what}", values))
    items = list(values)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(_contract(func, f"a list of strings for {what}", values))
    return items


def standard_message_header(
    from_: str,
    tos: Sequence[str],
    ccs: Sequence[str],
    bccs: Sequence[str],
    subject: str,
    *,
    now: datetime | None = None,
) -> str:
    """Racket's header: ``From``, ``To``, ``CC``, ``Subject``, ``Date``, blank line.

    ``To``/``CC`` are left out when empty; Bcc recipients are never written
    (they belong to the envelope only).  Nothing is encoded or validated: see
    :func:`postwire.head.modern_message_header` for that.  ``now`` fixes the date.
    """
    for value, what in ((from_, "from_"), (subject, "subject")):
        if not isinstance(value, str):
            raise TypeError(_contract("standard_message_header", f"string {what}", value))
    to_list = _string_list(tos, "standard_message_header", "tos")
    cc_list = _string_list(ccs, "standard_message_header", "ccs")
    _string_list(bccs, "standard_message_header", "bccs")
    header = insert_field("Subject", subject, insert_field("Date", rfc2822_date(now), CRLF))
    if cc_list:
        header = insert_field("CC", assemble_address_field(cc_list), header)
    if to_list:
        header = insert_field("To", assemble_address_field(to_list), header)
    return insert_field("From", from_, header)


def data_lines_to_data(lines: Iterable[str]) -> str:
    """Join ``lines`` with CRLF TAB: a multi-line value for :func:`insert_field`."""
    return "\r\n\t".join(_string_list(lines, "data_lines_to_data", "lines"))
