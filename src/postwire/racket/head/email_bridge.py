"""Bridges between Racket-style headers and :class:`email.message.EmailMessage`."""

from __future__ import annotations

import email.errors
import email.policy
from collections.abc import Iterable
from email.message import EmailMessage, Message
from email.parser import BytesParser

from ...address import Address, Group, parse_address_list
from .compose import compose_message
from .fields import extract_field, remove_field, validate_header

__all__ = ["header_to_message", "message_to_header", "message_to_parts"]


def header_to_message(
    header: str | bytes, body_lines: Iterable[str | bytes] | None = None
) -> EmailMessage:
    """Parse ``header`` (and body lines) as a receiver would, into an ``EmailMessage``.

    The input goes through :func:`compose_message` first, so it is validated
    the same way; headers are read with :data:`email.policy.default`.
    """
    data = compose_message(header, () if body_lines is None else body_lines)
    message = BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)  # guaranteed by policy.default
    return message


_ADDRESS_FIELDS = ("from", "sender", "reply-to", "to", "cc", "bcc")


def _check_ascii_addresses(msg: Message, func: str) -> None:
    # policy.SMTP would write a non-ASCII addr-spec as encoded-words, which no
    # server can deliver to: refuse instead (RFC 2047 §5 forbids them there).
    for name, value in msg.items():
        base = name.lower().removeprefix("resent-")
        if base not in _ADDRESS_FIELDS:
            continue
        addresses = getattr(value, "addresses", None)
        if addresses is None:
            try:
                items = parse_address_list(str(value))
            except ValueError:
                continue  # not ours to judge; the generator writes it as it is
            pairs = [(m.local_part, m.domain) for m in _mailboxes(items)]
        else:
            pairs = [(a.username, a.domain) for a in addresses]
        for local, domain in pairs:
            if not (local.isascii() and domain.isascii()):
                raise ValueError(
                    f"{func}: {name} has the non-ASCII address "
                    f"{local}@{domain}: use smtputf8=True (and an SMTPUTF8 server) "
                    "or A-label domains"
                )


def _mailboxes(items: Iterable[Address | Group]) -> list[Address]:
    found: list[Address] = []
    for item in items:
        found.extend(item.members if isinstance(item, Group) else (item,))
    return found


def message_to_parts(
    msg: Message, *, smtputf8: bool = False, keep_bcc: bool = False
) -> tuple[str, list[bytes]]:
    """Split a message into a Racket-style header and body lines (without CRLF).

    The message is serialized with :data:`email.policy.SMTP` (or ``SMTPUTF8``),
    so ``compose_message(*message_to_parts(msg))`` is what ``msg.as_bytes()``
    would send.  ``Bcc`` and ``Resent-Bcc`` are left out unless ``keep_bcc``.
    """
    if not isinstance(msg, Message):
        raise TypeError(f"message_to_parts: expected an email Message, got {type(msg)!r}")
    if not smtputf8:
        _check_ascii_addresses(msg, "message_to_parts")
    # Headers read from a source are written back as they were (no refolding).
    policy = (email.policy.SMTPUTF8 if smtputf8 else email.policy.SMTP).clone(refold_source="none")
    try:
        data = msg.as_bytes(policy=policy)
    except (UnicodeError, email.errors.MessageError) as err:
        raise ValueError(f"message_to_parts: cannot serialize the message: {err}") from None
    if data.startswith(b"\r\n"):
        raw_header, body = b"\r\n", data[2:]
    else:
        end = data.find(b"\r\n\r\n")
        if end < 0:  # headers only, and no blank line written
            raw_header, body = data + (b"\r\n" if data.endswith(b"\r\n") else b"\r\n\r\n"), b""
        else:
            raw_header, body = data[: end + 4], data[end + 4 :]
    try:
        validate_header(raw_header)
    except ValueError as err:
        # The email package's folder has bugs with unusual display names
        # (e.g. one starting with U+00A0 loses the folding white space).
        raise ValueError(f"message_to_parts: the email package wrote a bad header: {err}") from None
    try:
        header = raw_header.decode("utf-8" if smtputf8 else "ascii")
    except UnicodeDecodeError:
        raise ValueError(
            "message_to_parts: the header has 8-bit bytes; use smtputf8=True"
        ) from None
    if not keep_bcc:
        for name in ("Bcc", "Resent-Bcc"):
            while extract_field(name, header) is not None:
                header = remove_field(name, header)
    lines = body.split(b"\r\n")
    if lines[-1] == b"":
        lines.pop()
    return header, lines


def message_to_header(msg: Message, *, smtputf8: bool = False, keep_bcc: bool = False) -> str:
    """The header of ``msg`` as a Racket-style header string (see :func:`message_to_parts`)."""
    return message_to_parts(msg, smtputf8=smtputf8, keep_bcc=keep_bcc)[0]
