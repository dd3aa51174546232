"""One captured message: the envelope, the bytes as received, and a one-line summary."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path

from .._core.chars import CONTROL

__all__ = ["CapturedMessage", "decode_text"]

# A run of control characters becomes one space in the summary's subject.
_CONTROL_RUN = re.compile(f"(?:{CONTROL.pattern})+")
_FOLD = re.compile(r"\r?\n(?=[ \t])")  # RFC 5322 section 2.2.3: unfolding removes the CRLF
# compat32 reads headers as they are, several times faster than the modern policy; the
# values are decoded by decode_text (one message in a thousand has a header worth the wait).
_HEADERS = BytesHeaderParser(policy=policy.compat32)


def decode_text(value: str | None) -> str:
    """A header value unfolded, with RFC 2047 encoded words decoded; never raises."""
    if value is None:
        return ""
    value = _FOLD.sub("", value)
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # a broken encoded word: show it as it came
        return value


@dataclass(frozen=True)
class CapturedMessage:
    """One message as the capture server received it.

    ``data`` is the message content exactly as sent after DATA (CRLF line endings, dot-stuffing
    removed, RFC 5321 section 4.5.2). ``mail_from`` is ``""`` for the null reverse-path ``<>``.
    ``path`` is the Maildir file, when the server writes one.

    The session that brought it: ``helo`` (the EHLO/HELO name), ``tls_version`` and
    ``tls_cipher`` (``None`` without TLS), ``transcript`` (the SMTP exchange of the session up to
    this message, AUTH payloads redacted, the content replaced by its size) and ``mailbox`` (the
    name of the listener it came in on: ``None`` for the server's own port). ``id`` is the
    store's identifier, the one the web UI and the HTTP API use.
    """

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    peer: tuple[str, int] | None
    tls: bool
    auth_user: str | None
    received_at: datetime
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[str] = field(default_factory=list)
    path: Path | None = None
    helo: str | None = None
    tls_version: str | None = None
    tls_cipher: str | None = None
    transcript: tuple[str, ...] = ()
    mailbox: str | None = None
    id: str = ""

    def email(self) -> EmailMessage:
        """Parse :attr:`data` with the modern :mod:`email` policy."""
        msg = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(msg, EmailMessage)
        return msg

    @property
    def subject(self) -> str | None:
        """The decoded Subject header, or None when there is none (or it cannot be parsed)."""
        # Parse only the header block: the body may be tens of megabytes.
        end = self.data.find(b"\r\n\r\n")
        head = self.data if end < 0 else self.data[: end + 2]
        try:
            value = _HEADERS.parsebytes(head)["subject"]
        except Exception:  # a malformed header must not break logging
            return None
        return None if value is None else decode_text(str(value))

    def summary(self) -> str:
        """One log line: time, envelope, size, TLS, AUTH user and subject."""
        when = self.received_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        to = ",".join(f"<{rcpt}>" for rcpt in self.rcpt_tos)
        subject = _CONTROL_RUN.sub(" ", self.subject or "")
        subject = subject.replace("\\", "\\\\").replace('"', '\\"')
        return (
            f"{when} from=<{self.mail_from}> to={to} size={len(self.data)} "
            f'tls={"yes" if self.tls else "no"} auth={self.auth_user or "-"} subject="{subject}"'
        )
