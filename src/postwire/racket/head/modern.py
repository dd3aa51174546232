"""A standards-conforming header built from addresses: :func:`modern_message_header`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from email.utils import format_datetime, make_msgid

from ..._core.chars import CONTROL_EXCEPT_TAB
from ...address import (
    Address,
    Group,
    fold_address_field,
    fold_words,
    normalize_domain,
    parse_address_list,
)
from ...address.encoded_words import encode_words
from .fields import CRLF

__all__ = ["Recipient", "modern_message_header"]


Recipient = str | Address | Group


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
        if CONTROL_EXCEPT_TAB.search(text):
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
