"""Messages for the command line: built from options, or read as bytes and left as they are.

A message read from a file or stdin is sent byte for byte, except that its
Bcc fields are taken out (they name hidden recipients, RFC 5322 §3.6.3) and a
leading mbox ``From `` line is dropped; the client turns bare LF into CRLF.
Every check runs before a connection is made, so bad input sends nothing.
"""

from __future__ import annotations

import email.utils
import mimetypes
import re
import socket
import sys
from collections.abc import Iterable, Iterator, Sequence
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from typing import BinaryIO

from .._core.chars import LINE_BREAK_OR_NUL
from .._core.identification import add_missing_fields, domain_of, make_message_id
from .._core.message import envelope_from_message
from .exits import CLIError, Exit

__all__ = [
    "add_missing_headers",
    "build_message",
    "check_header_value",
    "envelope_from_headers",
    "html_to_text",
    "open_raw",
    "parse_addresses",
    "parse_header_option",
    "read_input",
    "strip_bcc",
]

_HEAD_LIMIT = 1 << 20  # a header block larger than 1 MiB is not a message
_BODY_READ_SIZE = 1 << 20  # bytes of a message body read at a time (file or stdin)
_HIDDEN_FIELDS = (b"bcc", b"resent-bcc")
_FIELD = re.compile(rb"[!-9;-~]+[ \t]*:")  # a field name and its colon (RFC 5322 §2.2)
#: Fields the built message sets itself: --header may not add a second one.
_BUILT_FIELDS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)


def check_header_value(option: str, value: str) -> str:
    """Refuse CR, LF and NUL: they would start a new header line (header injection)."""
    if LINE_BREAK_OR_NUL.search(value):
        raise CLIError(
            f"{option}: line breaks are not allowed in a header value: {value!r}", Exit.USAGE
        )
    return value


def _check_address(option: str, addr: str) -> str:
    if addr.startswith("-"):
        # It could be read as an option by whatever handles the address next (sendmail).
        raise CLIError(f"{option}: an address may not start with '-': {addr!r}", Exit.USAGE)
    if not addr or any(ch.isspace() for ch in addr) or addr.startswith("@") or addr.endswith("@"):
        raise CLIError(f"{option}: not an e-mail address: {addr!r}", Exit.USAGE)
    return addr


def parse_addresses(option: str, values: Iterable[str]) -> list[tuple[str, str]]:
    """``--to`` style values (each may be a comma-separated list) as (name, address) pairs."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        if not isinstance(value, str):
            # argparse turns "--to=--" into an empty list: there is no address.
            raise CLIError(f"{option}: an address is missing", Exit.USAGE)
        check_header_value(option, value)
        if value.lstrip().startswith("-"):
            _check_address(option, value.strip())
        found = [(name, addr) for name, addr in email.utils.getaddresses([value]) if name or addr]
        if not found:
            raise CLIError(f"{option}: no address in {value!r}", Exit.USAGE)
        for name, addr in found:
            pairs.append((name, _check_address(option, addr)))
    return pairs


def read_input(path: str, what: str = "message") -> bytes:
    """The bytes of ``path`` (``-`` is stdin); unreadable input is EX_NOINPUT."""
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        return Path(path).read_bytes()
    except OSError as exc:
        where = "standard input" if path == "-" else path
        reason = exc.strerror or str(exc)
        code = Exit.IOERR if path == "-" else Exit.NOINPUT
        raise CLIError(f"cannot read the {what} {where}: {reason}", code) from None


def parse_header_option(text: str) -> tuple[str, str]:
    """``--header NAME:VALUE`` as (name, value); the name as RFC 5322 §2.2 allows."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not _FIELD.fullmatch(name.encode("utf-8", "replace") + b":"):
        raise CLIError(f"--header: expected NAME:VALUE with a field name, not {text!r}", Exit.USAGE)
    if name.lower() in _BUILT_FIELDS:
        raise CLIError(
            f"--header: {name} is set by its own option (or by postwire): {text!r}", Exit.USAGE
        )
    return name, check_header_value("--header", value.strip())


class _TextOfHTML(HTMLParser):
    """The text of an HTML document, for the plain part of a message given only as HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """A readable plain-text version of ``html`` (tags dropped, blank runs collapsed)."""
    parser = _TextOfHTML()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def build_message(
    *,
    sender: tuple[str, str],
    to: Sequence[tuple[str, str]],
    cc: Sequence[tuple[str, str]],
    subject: str,
    body: str,
    attachments: Sequence[str],
    reply_to: Sequence[tuple[str, str]] = (),
    html: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> EmailMessage:
    """A text message, with an HTML alternative and attachments when asked.

    text/plain; multipart/alternative with ``html`` (RFC 2046 §5.1.4: the
    plain text first, derived from the HTML when no ``body`` is given);
    multipart/mixed around it with attachments.  Bcc goes in the envelope only.
    """
    msg = EmailMessage()
    msg["From"] = email.utils.formataddr(sender)
    if to:
        msg["To"] = ", ".join(email.utils.formataddr(p) for p in to)
    if cc:
        msg["Cc"] = ", ".join(email.utils.formataddr(p) for p in cc)
    if reply_to:
        msg["Reply-To"] = ", ".join(email.utils.formataddr(p) for p in reply_to)
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = make_message_id(domain_of(sender[1], socket.gethostname()))
    for name, value in headers:
        msg[name] = value
    msg.set_content(body if body or html is None else html_to_text(html))
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for path in attachments:
        data = read_input(path, "attachment")
        ctype, encoding = mimetypes.guess_type(path)
        if ctype is None or encoding is not None:
            ctype = "application/octet-stream"
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=Path(path).name)
    return msg


# -- raw messages ---------------------------------------------------------------------------


class RawMessage:
    """A message file: its header block in memory, the rest streamed from the file.

    Only the header is needed to find the envelope and drop Bcc, so a message
    of any size is sent in constant memory.
    """

    def __init__(self, head: bytes, rest: BinaryIO, owned: bool) -> None:
        self.head = head
        self._rest = rest
        self._owned = owned

    def body_chunks(self) -> Iterator[bytes]:
        while True:
            chunk = self._rest.read(_BODY_READ_SIZE)
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        if self._owned:
            self._rest.close()


def open_raw(path: str) -> RawMessage:
    """Open a message file (``-`` is stdin) and read its header block."""
    where = "standard input" if path == "-" else path
    try:
        stream: BinaryIO = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise CLIError(f"cannot read the message {where}: {exc.strerror}", Exit.NOINPUT) from None
    try:
        head = bytearray()
        while True:
            line = stream.readline(_HEAD_LIMIT)
            if not head and line.startswith(b"From "):
                continue  # an mbox From_ line is no header field
            head += line
            if line in (b"", b"\n", b"\r\n"):
                break
            if len(head) > _HEAD_LIMIT:
                raise CLIError(f"{where}: the header is larger than 1 MiB", Exit.DATAERR)
    except BaseException as exc:
        if path != "-":
            stream.close()
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            raise CLIError(f"cannot read the message {where}: {reason}", Exit.IOERR) from None
        raise
    return RawMessage(bytes(head), stream, owned=path != "-")


def _split(data: bytes) -> tuple[list[bytes], bytes]:
    """The header lines (with their line ends) and everything after the header block."""
    lines = data.splitlines(keepends=True)
    head: list[bytes] = []
    for i, line in enumerate(lines):
        if line in (b"\r\n", b"\n", b"\r"):
            return head, b"".join(lines[i:])
        head.append(line)
    return head, b""


def _drop_mbox_from(data: bytes) -> bytes:
    # An "mbox From_ line" is no header field: a message saved from a mailbox may start with it.
    if data.startswith(b"From "):
        end = data.find(b"\n")
        return data[end + 1 :] if end >= 0 else b""
    return data


def strip_bcc(data: bytes) -> bytes:
    """``data`` without Bcc / Resent-Bcc fields (and their folded lines) or a From_ line."""
    head, rest = _split(_drop_mbox_from(data))
    kept: list[bytes] = []
    dropping = False
    for line in head:
        if line[:1] in (b" ", b"\t"):  # a folded continuation line (RFC 5322 §2.2.3)
            if not dropping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        dropping = name in _HIDDEN_FIELDS
        if not dropping:
            kept.append(line)
    return b"".join(kept) + rest


def _parse_head(data: bytes) -> Message:
    head, _ = _split(data)
    return BytesParser(policy=policy.default).parsebytes(b"".join(head), headersonly=True)


def envelope_from_headers(data: bytes) -> tuple[str | None, list[str]]:
    """The sender and recipients a message's header names (Resent-* first, RFC 5322 §3.6.6)."""
    try:
        msg = _parse_head(_drop_mbox_from(data))
        has_from = msg.get("Sender") or msg.get("From") or msg.get("Resent-From")
        if not has_from:
            recipients = [a for _, a in email.utils.getaddresses(_values(msg)) if a]
            return None, recipients
        sender, recipients = envelope_from_message(msg)
    except (ValueError, TypeError, IndexError) as exc:
        raise CLIError(f"cannot read the message header: {exc}", Exit.DATAERR) from None
    return sender, recipients


def _values(msg: Message) -> list[str]:
    return [str(v) for name in ("To", "Cc", "Bcc") for v in msg.get_all(name) or []]


def has_header(data: bytes, name: str) -> bool:
    """Whether the header block of ``data`` has a ``name`` field (False if it cannot be read)."""
    try:
        return _parse_head(data).get(name) is not None
    except (ValueError, TypeError, IndexError):
        return False


def add_missing_headers(data: bytes, sender: str, full_name: str | None) -> bytes:
    """Add From (with ``full_name``), Date and Message-ID when missing, as sendmail does.

    Postfix's cleanup adds the same three to locally submitted mail (RFC 5322
    §3.6); the Message-ID's domain is the sender's, else this host's name.
    """
    data, _ = add_missing_fields(data, domain=domain_of(sender, socket.gethostname()))
    if not sender or has_header(data, "From"):
        return data
    eol = b"\r\n" if b"\r\n" in data[:4096] else b"\n"
    from_field = "From: " + email.utils.formataddr((full_name or "", sender))
    return from_field.encode("utf-8") + eol + data
