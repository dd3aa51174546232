"""The e-mail a batch of records becomes: subject, body, headers.

The subject is the handler's ``subject`` followed by how many records the message holds (and
how many were dropped before it); the body is the records as the handler's formatter wrote
them, one after the other, under a line about the dropped ones when there were any.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage

from .batching import Batch

__all__ = ["body_text", "build_message", "subject_line"]


def _records(count: int) -> str:
    return f"{count} record" if count == 1 else f"{count} records"


def subject_line(subject: str, records: int, dropped: int) -> str:
    """``"<subject> (3 records)"``, or ``"<subject> (3 records, 12 dropped)"``."""
    counts = _records(records) + (f", {dropped} dropped" if dropped else "")
    return f"{subject} ({counts})"


def body_text(batch: Batch) -> str:
    """The records, newline-separated, after a note on the dropped ones (if any)."""
    lines: list[str] = []
    if batch.dropped:
        why = (
            "did not fit this last message"
            if batch.final
            else "the queue was full, or a send failed"
        )
        lines += [
            f"[postwire.logging: {_records(batch.dropped)} dropped before these ({why}).]",
            "",
        ]
    lines += batch.texts
    return "\n".join(lines) + "\n"


def build_message(
    batch: Batch, *, sender: str, recipients: Sequence[str], subject: str
) -> EmailMessage:
    """The message for ``batch``; ``subject`` is the whole Subject line.

    ``Auto-Submitted: auto-generated`` (RFC 3834 §5) asks vacation responders and other
    robots not to answer: a reply to a log alert would be noise at best, a loop at worst.
    Date and Message-ID are added by the client at send time.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body_text(batch))
    return message
