"""A captured message read for people and the HTTP API: addresses, subject, text, parts.

The JSON shapes follow Mailpit's API (``MessageSummary``, ``Message``, ``Attachment``: the same
field names), so its clients and habits carry over. Part IDs number the MIME tree as IMAP does
(RFC 3501 §6.4.5: ``1``, ``2``, ``1.2``...; a message that is not multipart has one part, ``1``).
Everything is read leniently: a malformed message is shown as well as it can be, never refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timezone
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses
from functools import cached_property
from typing import Any

from .message import CapturedMessage, decode_text

__all__ = ["ParsedMessage", "Part", "address_json"]

SNIPPET_LENGTH = 250
_SPACES = re.compile(r"\s+")
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)
_PARSER = BytesParser(policy=policy.compat32)  # lenient and fast; values decoded by hand


def address_json(name: str, address: str) -> dict[str, str]:
    """One address in Mailpit's shape."""
    return {"Name": decode_text(name), "Address": address}


@dataclass(frozen=True)
class Part:
    """One node of the MIME tree."""

    part_id: str
    content_type: str
    filename: str
    content_id: str
    disposition: str
    size: int
    children: tuple[Part, ...]
    message: Message

    @property
    def is_attachment(self) -> bool:
        """An attachment is a leaf with a filename or ``Content-Disposition: attachment``."""
        return not self.children and (self.disposition == "attachment" or bool(self.filename))

    def payload(self) -> bytes:
        """The decoded content (base64 or quoted-printable undone)."""
        data = self.message.get_payload(decode=True)
        return data if isinstance(data, bytes) else b""

    def text(self) -> str:
        """The content as text in its charset (unknown bytes replaced)."""
        charset = self.message.get_content_charset() or "utf-8"
        try:
            return self.payload().decode(charset, "replace")
        except LookupError:  # an unknown charset name
            return self.payload().decode("utf-8", "replace")

    def attachment_json(self) -> dict[str, Any]:
        """Mailpit's ``Attachment`` shape."""
        return {
            "PartID": self.part_id,
            "FileName": self.filename,
            "ContentType": self.content_type,
            "ContentID": self.content_id,
            "Size": self.size,
        }

    def tree_json(self) -> dict[str, Any]:
        """This node and its children (postwire's MIME tree view)."""
        return {
            "PartID": self.part_id,
            "ContentType": self.content_type,
            "FileName": self.filename,
            "Disposition": self.disposition,
            "Size": self.size,
            "Parts": [child.tree_json() for child in self.children],
        }

    def walk(self) -> list[Part]:
        """This part and every part below it, depth first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


def _build(msg: Message, part_id: str) -> Part:
    children: tuple[Part, ...] = ()
    if msg.is_multipart():
        payload = msg.get_payload()
        if isinstance(payload, list):
            prefix = "" if part_id == "" else part_id + "."
            children = tuple(_build(sub, f"{prefix}{i}") for i, sub in enumerate(payload, 1))
    raw = msg.get_payload(decode=True) if not children else None
    filename = decode_text(msg.get_filename() or msg.get_param("name") or "")  # type: ignore[arg-type]
    disposition = (msg.get_content_disposition() or "") if not children else ""
    return Part(
        # The root of a multipart message is the whole message (no number); a single-part
        # message's body is part 1 (RFC 3501 section 6.4.5).
        part_id=part_id or ("" if children else "1"),
        content_type=msg.get_content_type(),
        filename=filename if isinstance(filename, str) else "",
        content_id=(msg.get("Content-ID") or "").strip().strip("<>"),
        disposition=disposition,
        size=len(raw) if isinstance(raw, bytes) else 0,
        children=children,
        message=msg,
    )


class ParsedMessage:
    """A :class:`CapturedMessage` parsed on demand (each view is computed once)."""

    def __init__(self, captured: CapturedMessage) -> None:
        self.captured = captured

    @cached_property
    def message(self) -> Message:
        """The whole message, parsed leniently."""
        return _PARSER.parsebytes(self.captured.data)

    @cached_property
    def tree(self) -> Part:
        """The MIME tree; the root's children are parts ``1``, ``2``...; a leaf root is ``1``."""
        return _build(self.message, "")

    def _addresses(self, *names: str) -> list[tuple[str, str]]:
        values = [v for name in names for v in self.message.get_all(name) or []]
        return [(n, a) for n, a in getaddresses([str(v) for v in values]) if a or n]

    @cached_property
    def subject(self) -> str:
        """The decoded Subject."""
        return decode_text(self.message.get("Subject"))

    def header(self, name: str) -> str:
        """One header, decoded ("" when missing)."""
        return decode_text(self.message.get(name))

    @cached_property
    def text(self) -> str:
        """The first text/plain part that is not an attachment ("" when none)."""
        return self._first("text/plain")

    @cached_property
    def html(self) -> str:
        """The first text/html part that is not an attachment ("" when none)."""
        return self._first("text/html")

    def _first(self, content_type: str) -> str:
        for part in self.tree.walk():
            if part.content_type == content_type and not part.is_attachment and not part.children:
                return part.text()
        return ""

    @cached_property
    def snippet(self) -> str:
        """The start of the text (or of the HTML without tags), whitespace collapsed."""
        source = self.text or _TAGS.sub(" ", self.html)
        return _SPACES.sub(" ", source).strip()[:SNIPPET_LENGTH]

    def inline(self) -> list[Part]:
        """Leaves with a Content-ID (images an HTML body refers to by ``cid:``, RFC 2392)."""
        return [
            p
            for p in self.tree.walk()
            if not p.children and p.content_id and p.content_type not in ("text/plain", "text/html")
        ]

    def attachments(self) -> list[Part]:
        """Leaves with ``Content-Disposition: attachment`` or a file name, not inline."""
        inline = {p.part_id for p in self.inline()}
        return [p for p in self.tree.walk() if p.is_attachment and p.part_id not in inline]

    def part(self, part_id: str) -> Part | None:
        """The part with this ID, or None."""
        for part in self.tree.walk():
            if part.part_id == part_id:
                return part
        return None

    @cached_property
    def search_text(self) -> str:
        """What a plain search term is looked for in (lower case)."""
        c = self.captured
        fields = [
            c.mail_from,
            *c.rcpt_tos,
            self.header("From"),
            self.header("To"),
            self.header("Cc"),
            self.subject,
            self.header("Message-ID"),
            self.text or _TAGS.sub(" ", self.html),
        ]
        return "\n".join(fields).lower()

    def bcc(self) -> list[tuple[str, str]]:
        """Envelope recipients not named in To or Cc (as Mailpit shows them)."""
        named = {a.lower() for _, a in self._addresses("To", "Cc")}
        return [("", r) for r in self.captured.rcpt_tos if r.lower() not in named]

    # -- JSON ----------------------------------------------------------------------------------

    def _common(self, read: bool) -> dict[str, Any]:
        c = self.captured
        froms = self._addresses("From")
        return {
            "ID": c.id,
            "MessageID": self.header("Message-ID").strip().strip("<>"),
            "Read": read,
            "From": address_json(*froms[0]) if froms else address_json("", c.mail_from),
            "To": [address_json(n, a) for n, a in self._addresses("To")],
            "Cc": [address_json(n, a) for n, a in self._addresses("Cc")],
            "Bcc": [address_json(n, a) for n, a in self.bcc()],
            "ReplyTo": [address_json(n, a) for n, a in self._addresses("Reply-To")],
            "Subject": self.subject,
            "Tags": [],
            "Username": c.auth_user or "",
            "Size": len(c.data),
        }

    def summary_json(self, read: bool) -> dict[str, Any]:
        """Mailpit's ``MessageSummary``."""
        out = self._common(read)
        out["Created"] = _rfc3339(self.captured)
        out["Attachments"] = len(self.attachments())
        out["Snippet"] = self.snippet
        out["Mailbox"] = self.captured.mailbox or ""
        return out

    def message_json(self, read: bool) -> dict[str, Any]:
        """Mailpit's ``Message``."""
        out = self._common(read)
        out["ReturnPath"] = self.captured.mail_from
        out["Date"] = _rfc3339(self.captured)
        out["Text"] = self.text
        out["HTML"] = self.html
        out["Inline"] = [p.attachment_json() for p in self.inline()]
        out["Attachments"] = [p.attachment_json() for p in self.attachments()]
        return out

    def headers_json(self) -> dict[str, list[str]]:
        """Every header, decoded, name -> values in order (Mailpit's ``/headers``)."""
        out: dict[str, list[str]] = {}
        for name, value in self.message.items():
            out.setdefault(name, []).append(decode_text(str(value)))
        return out

    def session_json(self) -> dict[str, Any]:
        """The envelope and the session that brought the message (postwire's own view)."""
        c = self.captured
        return {
            "ID": c.id,
            "Mailbox": c.mailbox or "",
            "MailFrom": c.mail_from,
            "RcptTo": list(c.rcpt_tos),
            "MailOptions": list(c.mail_options),
            "RcptOptions": list(c.rcpt_options),
            "Peer": f"{c.peer[0]}:{c.peer[1]}" if c.peer else "",
            "Helo": c.helo or "",
            "TLS": {"Version": c.tls_version, "Cipher": c.tls_cipher} if c.tls else None,
            "Username": c.auth_user or "",
            "Transcript": list(c.transcript),
            "Received": _rfc3339(c),
        }


def _rfc3339(c: CapturedMessage) -> str:
    when = c.received_at.astimezone(timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
