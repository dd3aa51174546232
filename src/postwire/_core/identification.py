"""Date and Message-ID for messages that lack them (RFC 5322 §3.6.1, §3.6.4).

RFC 5322 requires an origination date and says every message SHOULD have a
Message-ID; receivers such as Gmail reject or penalise mail without them.
Mail user agents and Django add both when the author did not; so does
:class:`~postwire.Client` for an ``EmailMessage`` (``add_missing=True``), the
outbox at ``put`` (the Message-ID is stored there, so a retry keeps it and
receivers can de-duplicate), and sendmail mode (Message-ID, as Postfix does
for local submissions).  Bytes and files given to ``send`` go byte for byte.

The domain of a new Message-ID is the sender's, else the host's name; never
a DNS lookup (``email.utils.make_msgid`` calls ``socket.getfqdn()``, which
may block for seconds).
"""

from __future__ import annotations

import base64
import email.utils
import re
import secrets
import time

__all__ = ["add_missing_fields", "domain_of", "make_message_id", "message_id_of", "missing_fields"]

# A field name at the start of an unfolded line (RFC 5322 §2.2: printable
# ASCII but ":"); a continuation line starts with white space.
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)
_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.I | re.M)
# id-right is a dot-atom-text (RFC 5322 §3.6.4); keep only what is safe in one.
_UNSAFE_DOMAIN = re.compile(r"[^A-Za-z0-9.-]")
#: The empty line that ends the header section, CRLF or bare LF (RFC 5322 §2.1).
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def make_message_id(domain: str) -> str:
    """A new, globally unique ``<id-left@id-right>`` (RFC 5322 §3.6.4).

    id-left is the time in nanoseconds and 80 random bits, base32: unique
    without any state shared between processes or machines.
    """
    stamp = base64.b32encode(time.time_ns().to_bytes(8, "big")).decode().rstrip("=").lower()
    unique = base64.b32encode(secrets.token_bytes(10)).decode().rstrip("=").lower()
    ascii_domain = domain if domain.isascii() else domain.encode("idna").decode("ascii")
    right = _UNSAFE_DOMAIN.sub("", ascii_domain).strip(".")
    return f"<{stamp}.{unique}@{right or 'localhost'}>"


def domain_of(address: str | None, fallback: str) -> str:
    """The domain of ``address`` (``"user@domain"``, or a header value), else ``fallback``."""
    if address:
        _, parsed = email.utils.parseaddr(address)
        domain = parsed.rpartition("@")[2].strip("[]") if "@" in parsed else ""
        if domain:
            return domain
    return fallback


def _header_of(data: bytes) -> bytes:
    """The header section: up to the first empty line (CRLF or bare LF)."""
    match = _HEADER_END.search(data)
    return data if match is None else data[: match.start() + 1]


def missing_fields(data: bytes) -> tuple[bool, bool]:
    """Whether the message in ``data`` lacks (Date, Message-ID)."""
    names = {m.group(1).lower() for m in _FIELD.finditer(_header_of(data))}
    return b"date" not in names, b"message-id" not in names


def message_id_of(data: bytes) -> str | None:
    """The message's Message-ID field, unfolded, or None."""
    return _message_id_in(_header_of(data))


def _message_id_in(header: bytes) -> str | None:
    match = _MESSAGE_ID.search(header)
    if match is None:
        return None
    return " ".join(match.group(1).decode("utf-8", "replace").split()) or None


def add_missing_fields(
    data: bytes, *, domain: str, date: bool = True, message_id: bool = True
) -> tuple[bytes, str | None]:
    """``data`` with a Date and a Message-ID put first where missing; and its Message-ID.

    The new fields use the message's own line ending.  Returns the Message-ID
    the message has now (its own, or the new one), or None when it has none
    and ``message_id`` is false.
    """
    header = _header_of(data)  # once: a queue calls this for every message it takes
    names = {m.group(1).lower() for m in _FIELD.finditer(header)}
    no_date, no_id = b"date" not in names, b"message-id" not in names
    eol = b"\r\n" if b"\r\n" in data[:1000] or not data else b"\n"
    added: list[bytes] = []
    if no_date and date:
        added.append(b"Date: " + email.utils.formatdate(localtime=True).encode("ascii") + eol)
    found = None if no_id else _message_id_in(header)
    if no_id and message_id:
        found = make_message_id(domain)
        added.append(b"Message-ID: " + found.encode("ascii") + eol)
    if not added:
        return data, found
    if _FIELD.match(data) is None:
        # No header at all: the new fields make one, and an empty line ends it.
        added.append(eol)
    return b"".join(added) + data, found
