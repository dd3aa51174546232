"""Racket's ``net/head`` for Python, plus bridges to :mod:`email` and a modern header builder.

The twelve names of Racket's ``head^`` signature behave as in Racket 8.7 on
``str`` and ``bytes`` headers (see the project's spec), with five fixes:
TAB-folded lines stay continuations even with a colon; ``extract_all_fields``
skips TABs after the colon; empty address-list elements are skipped;
``validate_header`` rejects empty field names and bare CR/LF inside lines;
errors name the function and are ``ValueError``/``TypeError``.

Beyond Racket: :func:`compose_message` (header + body lines -> CRLF bytes),
:func:`header_to_message` / :func:`message_to_header` (to and from
:class:`email.message.EmailMessage`) and :func:`modern_message_header`
(Message-ID, MIME, RFC 2047, validated addresses).  Address tools live in
:mod:`postwire.address`.
"""

from __future__ import annotations

import email.errors
import email.policy
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, make_msgid
from typing import AnyStr, Literal, Protocol, overload

from ...address import (
    Address,
    Group,
    fold_address_field,
    fold_words,
    normalize_domain,
    parse_address_list,
)
from ...address.encoded_words import encode_words
from .addresses import assemble_address_field, extract_addresses, extract_addresses_any
from .fields import (
    CRLF,
    append_headers,
    data_lines_to_data,
    empty_header,
    extract_all_fields,
    extract_field,
    insert_field,
    remove_field,
    replace_field,
    standard_message_header,
    validate_header,
)

__all__ = [
    "HeadSignature",
    "append_headers",
    "assemble_address_field",
    "compose_message",
    "data_lines_to_data",
    "empty_header",
    "extract_addresses",
    "extract_all_fields",
    "extract_field",
    "head_unit",
    "header_to_message",
    "insert_field",
    "message_to_header",
    "message_to_parts",
    "modern_message_header",
    "remove_field",
    "replace_field",
    "standard_message_header",
    "validate_header",
]


# ---------------------------------------------------------------------------
# header + lines -> wire bytes


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


# ---------------------------------------------------------------------------
# bridges to email.message


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


# ---------------------------------------------------------------------------
# modern_message_header

Recipient = str | Address | Group
_UNSAFE_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _header_items(values: Iterable[Recipient], what: str, smtputf8: bool) -> list[Address | Group]:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"modern_message_header: {what} must be a list, not one string")
    items: list[Address | Group] = []
    try:
        for value in values:
            if isinstance(value, str):
                items.extend(parse_address_list(value))
            elif isinstance(value, (Address, Group)):
                items.append(value)
            else:
                raise TypeError(f"modern_message_header: {what}: unexpected {type(value).__name__}")
        return [
            Group(item.display_name, tuple(m.normalized(smtputf8=smtputf8) for m in item.members))
            if isinstance(item, Group)
            else item.normalized(smtputf8=smtputf8)
            for item in items
        ]
    except ValueError as err:
        raise ValueError(f"modern_message_header: {what}: {err}") from None


def _unstructured(name: str, text: str, smtputf8: bool) -> str:
    """An unstructured field (RFC 5322 §3.2.5), RFC 2047-encoded when it must be."""
    words = text.split(" ")
    longest = max(len(word.encode("utf-8")) for word in words)
    if "=?" in text or (not smtputf8 and not text.isascii()) or longest > 900:
        words = encode_words(text)  # a literal "=?" or a huge word: encoded-words can be cut
    return fold_words(name, words)


def modern_message_header(
    from_: str | Address,
    tos: Sequence[Recipient],
    ccs: Sequence[Recipient],
    bccs: Sequence[Recipient],
    subject: str,
    *,
    message_id: bool | str = True,
    date: datetime | None = None,
    domain: str | None = None,
    smtputf8: bool = False,
    content_type: str | None = "text/plain; charset=utf-8",
    transfer_encoding: str | None = "8bit",
) -> str:
    """A standards-conforming header: From, To, Cc, Subject, Date, Message-ID, MIME fields.

    Addresses (strings are parsed as RFC 5322 address lists, so ``"Jörg <j@x>"``
    and groups work) are validated with :func:`postwire.address.validate_address`.
    Bccs are validated but never written.  Non-ASCII display names and
    subjects are RFC 2047-encoded and IDN domains become A-labels, unless
    ``smtputf8=True`` (then UTF-8 is written as is, RFC 6532, and the result
    may contain characters above U+00FF: send it with :func:`compose_message`).
    The Date is RFC 5322 (``date`` or now, local time); the Message-ID's right
    side is ``domain`` or the sender's domain (no DNS lookup).  Lines are
    folded at 78 characters between words.
    """
    if not isinstance(subject, str):
        raise TypeError("modern_message_header: subject must be str")
    for what, text in (
        ("subject", subject),
        ("content_type", content_type or ""),
        ("transfer_encoding", transfer_encoding or ""),
    ):
        if _UNSAFE_VALUE.search(text):
            raise ValueError(f"modern_message_header: {what} contains CR, LF or a control")
    senders = _header_items([from_], "from_", smtputf8)
    if len(senders) != 1 or not isinstance(senders[0], Address):
        raise ValueError("modern_message_header: from_ must be exactly one mailbox")
    sender = senders[0]
    to_items = _header_items(tos, "tos", smtputf8)
    cc_items = _header_items(ccs, "ccs", smtputf8)
    _header_items(bccs, "bccs", smtputf8)  # validated only: Bcc stays in the envelope

    when = datetime.now().astimezone() if date is None else date
    if when.utcoffset() is None:
        when = when.astimezone()  # naive means local time
    fields = [fold_address_field("From", [sender], utf8=smtputf8)]
    if to_items:
        fields.append(fold_address_field("To", to_items, utf8=smtputf8))
    if cc_items:
        fields.append(fold_address_field("Cc", cc_items, utf8=smtputf8))
    fields.append(_unstructured("Subject", subject, smtputf8))
    fields.append(f"Date: {format_datetime(when)}\r\n")
    if message_id is True:
        right = normalize_domain(domain if domain is not None else sender.domain)
        fields.append(f"Message-ID: {make_msgid(domain=right)}\r\n")
    elif isinstance(message_id, str):
        fields.append(f"Message-ID: {_check_message_id(message_id)}\r\n")
    fields.append("MIME-Version: 1.0\r\n")
    if content_type is not None:
        fields.append(f"Content-Type: {content_type}\r\n")
    if transfer_encoding is not None:
        fields.append(f"Content-Transfer-Encoding: {transfer_encoding}\r\n")
    return "".join(fields) + CRLF


def _check_message_id(value: str) -> str:
    # RFC 5322 §3.6.4: msg-id = "<" id-left "@" id-right ">"
    inner = value[1:-1]
    if not (value.startswith("<") and value.endswith(">") and "@" in inner) or any(
        ch in inner for ch in "<> \t\r\n"
    ):
        raise ValueError(f"modern_message_header: malformed Message-ID {value!r}")
    return value


# ---------------------------------------------------------------------------
# the unit and signature (Racket's head@ / head^)


class HeadSignature(Protocol):
    """Racket's ``head^``: the twelve names of ``net/head``."""

    @property
    def empty_header(self) -> str: ...
    def validate_header(self, candidate: str | bytes) -> None: ...
    def extract_field(self, field: AnyStr, header: AnyStr) -> AnyStr | None: ...
    def remove_field(self, field: AnyStr, header: AnyStr) -> AnyStr: ...
    def insert_field(self, field: AnyStr, value: AnyStr, header: AnyStr) -> AnyStr: ...
    def replace_field(self, field: AnyStr, value: AnyStr | None, header: AnyStr) -> AnyStr: ...
    def extract_all_fields(self, header: AnyStr) -> list[tuple[AnyStr, AnyStr]]: ...
    def append_headers(self, a: AnyStr, b: AnyStr) -> AnyStr: ...
    def standard_message_header(
        self,
        from_: str,
        tos: Sequence[str],
        ccs: Sequence[str],
        bccs: Sequence[str],
        subject: str,
        *,
        now: datetime | None = None,
    ) -> str: ...
    def data_lines_to_data(self, lines: Iterable[str]) -> str: ...
    @overload
    def extract_addresses(
        self, line: str | None, kind: Literal["name", "address", "full"]
    ) -> list[str]: ...
    @overload
    def extract_addresses(
        self, line: str | None, kind: Literal["all"]
    ) -> list[tuple[str, str, str]]: ...
    def assemble_address_field(self, addresses: Iterable[str]) -> str: ...


class _HeadUnit:
    """``head@``: the module's own functions, as one object satisfying :class:`HeadSignature`."""

    empty_header = empty_header
    validate_header = staticmethod(validate_header)
    extract_field = staticmethod(extract_field)
    remove_field = staticmethod(remove_field)
    insert_field = staticmethod(insert_field)
    replace_field = staticmethod(replace_field)
    extract_all_fields = staticmethod(extract_all_fields)
    append_headers = staticmethod(append_headers)
    standard_message_header = staticmethod(standard_message_header)
    data_lines_to_data = staticmethod(data_lines_to_data)
    assemble_address_field = staticmethod(assemble_address_field)

    @overload
    @staticmethod
    def extract_addresses(
        line: str | None, kind: Literal["name", "address", "full"]
    ) -> list[str]: ...
    @overload
    @staticmethod
    def extract_addresses(line: str | None, kind: Literal["all"]) -> list[tuple[str, str, str]]: ...
    @staticmethod
    def extract_addresses(line: str | None, kind: str) -> list[str] | list[tuple[str, str, str]]:
        return extract_addresses_any(line, kind)

    def __repr__(self) -> str:
        return "<unit head@>"


#: Racket's ``head@`` unit: an object with the twelve ``head^`` names.
head_unit: HeadSignature = _HeadUnit()
