"""From what the caller passes to ``send`` to an envelope and content.

An :class:`email.message.EmailMessage` gives its own envelope, as
``smtplib.SMTP.send_message`` does (RFC 5322 §3.6.6 Resent-* blocks first,
then Sender/From; To, Cc and Bcc), and is serialized with CRLF line endings
and without its Bcc fields.  Bytes, binary files and iterables of bytes are
sent as they are, and then the caller names the sender and recipients.
"""

from __future__ import annotations

import copy
import dataclasses
import email.generator
import email.message
import email.policy
import email.utils
import io
import os
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from .commands import Params
from .dsn import DSN
from .envelope import Envelope
from .identification import add_missing_fields, domain_of

__all__ = ["Content", "PreparedMessage", "prepare_message", "with_content"]

#: What ``send`` accepts as message content.
Content = (
    email.message.Message
    | bytes
    | bytearray
    | memoryview
    | BinaryIO
    | Iterable[bytes]
    | AsyncIterable[bytes]
)


@dataclass(frozen=True, slots=True)
class PreparedMessage:
    """An envelope and the content to stream (bytes, a file, or an iterable)."""

    envelope: Envelope
    content: object


def _resent_block(msg: email.message.Message) -> bool:
    # RFC 5322 §3.6.6: a message with exactly one Resent block is being
    # re-sent; its Resent-* fields give the envelope.  Several blocks make
    # the newest one ambiguous, and smtplib refuses that too.
    dates = msg.get_all("Resent-Date") or []
    if len(dates) > 1:
        raise ValueError("message has more than one Resent-Date block; pass sender/recipients")
    return bool(dates)


def envelope_from_message(msg: email.message.Message) -> tuple[str, list[str]]:
    """The (sender, recipients) a message's headers name."""
    prefix = "Resent-" if _resent_block(msg) else ""
    sender_field = msg.get(prefix + "Sender") or msg.get(prefix + "From")
    if sender_field is None:
        raise ValueError("message has no From (or Sender) header; pass sender=")
    senders = [addr for _, addr in email.utils.getaddresses([str(sender_field)]) if addr]
    if not senders:
        raise ValueError(f"cannot find an address in the From header: {sender_field!r}")
    fields: list[str] = []
    for name in ("To", "Cc", "Bcc"):
        fields.extend(str(v) for v in msg.get_all(prefix + name) or [])
    recipients = [addr for _, addr in email.utils.getaddresses(fields) if addr]
    return senders[0], recipients


def serialize(msg: email.message.Message, *, utf8: bool) -> bytes:
    """The message as CRLF bytes, without Bcc and Resent-Bcc fields."""
    msg = copy.copy(msg)  # shallow: deleting fields rebinds the header list
    del msg["Bcc"]
    del msg["Resent-Bcc"]
    base = msg.policy if isinstance(msg.policy, email.policy.EmailPolicy) else email.policy.SMTP
    policy = base.clone(linesep="\r\n", utf8=utf8) if utf8 else base.clone(linesep="\r\n")
    buf = io.BytesIO()
    gen = email.generator.BytesGenerator(buf, mangle_from_=False, policy=policy)
    gen.flatten(msg, unixfrom=False, linesep="\r\n")
    return buf.getvalue()


def prepare_message(
    message: object,
    *,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
    mail_params: Params = (),
    rcpt_params: Params = (),
    identify_in: str | None = None,
    dsn: DSN | None = None,
    requiretls: bool = False,
) -> PreparedMessage:
    """Validate ``message`` and find its envelope. Raises before any I/O.

    With ``identify_in`` (a domain), an ``EmailMessage`` without Date or
    Message-ID gets them (:mod:`postwire._core.identification`); the
    Message-ID's domain is the sender's, else ``identify_in``.  ``dsn`` and
    ``requiretls`` go into the envelope (RFC 3461, RFC 8689).
    """
    prepared = _prepare(message, sender, recipients, mail_params, rcpt_params, identify_in)
    if dsn is None and not requiretls:
        return prepared
    envelope = dataclasses.replace(prepared.envelope, dsn=dsn, requiretls=requiretls)
    return PreparedMessage(envelope, prepared.content)


def _prepare(
    message: object,
    sender: str | None,
    recipients: Sequence[str] | None,
    mail_params: Params,
    rcpt_params: Params,
    identify_in: str | None,
) -> PreparedMessage:
    if isinstance(recipients, str):
        raise TypeError("recipients must be a list of addresses, not a str")
    if isinstance(message, email.message.Message):
        found_sender, found_rcpts = envelope_from_message(message)
        sender = found_sender if sender is None else sender
        rcpts = list(found_rcpts if recipients is None else recipients)
        intl = not sender.isascii() or not all(r.isascii() for r in rcpts)
        data = serialize(message, utf8=intl)
        if identify_in is not None:
            data, _ = add_missing_fields(data, domain=domain_of(sender, identify_in))
        env = Envelope(
            sender, tuple(rcpts), len(data), not data.isascii(), intl, mail_params, rcpt_params
        )
        return PreparedMessage(env, data)
    if sender is None or recipients is None:
        raise ValueError(
            "sender= and recipients= are required when the message is not an EmailMessage"
        )
    if isinstance(message, str):
        raise TypeError(
            "message must be bytes, a binary file, an iterable of bytes "
            "or an EmailMessage, not str: encode it first"
        )
    if isinstance(message, (bytes, bytearray, memoryview)):
        data = message if isinstance(message, bytes) else bytes(message)
        # The content's facts given at once: one Envelope (and one check of its addresses)
        # per message on the hot path of send_many and the outbox's put.
        facts = _ContentFacts.of(data)
        env = Envelope(
            sender,
            tuple(recipients),
            facts.size,
            facts.eight_bit,
            False,
            mail_params,
            rcpt_params,
            binary=facts.binary,
            utf8_headers=facts.utf8_headers,
        )
        return PreparedMessage(env, data)
    if hasattr(message, "read"):
        size = _file_size(message)
        env = Envelope(sender, tuple(recipients), size, None, False, mail_params, rcpt_params)
        return PreparedMessage(env, message)
    if isinstance(message, (Iterable, AsyncIterable)):
        env = Envelope(sender, tuple(recipients), None, None, False, mail_params, rcpt_params)
        return PreparedMessage(env, message)
    raise TypeError(f"cannot send a {type(message).__name__} as a message")


def with_content(prepared: PreparedMessage, data: bytes) -> PreparedMessage:
    """``prepared`` with ``data`` as its content, and what the envelope knows of it updated.

    The size (RFC 1870), whether it is 8-bit (RFC 6152) and holds raw UTF-8 in
    its header (RFC 6532), and whether it needs BINARYMIME: NUL cannot travel
    in DATA, nor under 8BITMIME (RFC 6152 §2), only BODY=BINARYMIME.
    """
    env = prepared.envelope
    facts = _ContentFacts.of(data)
    return PreparedMessage(
        dataclasses.replace(
            env,
            size=facts.size,
            eight_bit=facts.eight_bit,
            binary=env.binary or facts.binary,
            utf8_headers=env.utf8_headers or facts.utf8_headers,
        ),
        data,
    )


class _ContentFacts(NamedTuple):
    """What the envelope learns from a message's bytes (see :func:`with_content`)."""

    size: int
    eight_bit: bool
    binary: bool
    utf8_headers: bool

    @classmethod
    def of(cls, data: bytes) -> _ContentFacts:
        eight_bit = not data.isascii()
        return cls(len(data), eight_bit, b"\0" in data, eight_bit and _utf8_header(data))


def _utf8_header(data: bytes) -> bool:
    """Whether the header section holds raw UTF-8 text (RFC 6532 §3.2)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    header = data if end < 0 else data[:end]
    if header.isascii():
        return False
    try:
        header.decode("utf-8")
    except UnicodeDecodeError:
        return False  # 8-bit but not UTF-8 (Latin-1 from an old program): not SMTPUTF8
    return True


def _file_size(f: object) -> int | None:
    try:
        fileno = f.fileno()  # type: ignore[attr-defined]
        st = os.fstat(fileno)
        pos = f.tell()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return max(0, st.st_size - pos) if st.st_size else None
