"""From what ``put`` is given to a row to store: content bytes, envelope, key, Message-ID.

A message is taken as ``send_many`` takes it (an ``EmailMessage``, or bytes, a binary
file or an iterable of bytes with ``sender`` and ``recipients``) and stored as bytes, so a
worker can send it any number of times.  A Date and a Message-ID are added when missing
(:func:`~postwire._core.identification.add_missing_fields`, RFC 5322 §3.6.1, §3.6.4) and
the Message-ID is stored: every retry sends the same one, so receivers can tell a
duplicate (RFC 1047) from a new message.  The key, which makes ``put`` idempotent, is the
Message-ID unless the caller names one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from .._core.identification import add_missing_fields
from .._core.message import prepare_message
from ..client._concurrency import iter_content
from .records import to_epoch
from .storage import NewEntry

__all__ = ["new_entry", "unpack"]


def unpack(item: object) -> tuple[object, str | None, Sequence[str] | None]:
    """A ``put_many`` item: a message, or ``(message, sender, recipients)``."""
    if isinstance(item, tuple):
        if len(item) != 3:
            raise ValueError("put_many items are messages or (message, sender, recipients)")
        return item[0], item[1], item[2]
    return item, None, None


def new_entry(
    message: object,
    *,
    sender: str | None,
    recipients: Sequence[str] | None,
    key: str | None,
    priority: int,
    not_before: dt.datetime | float | None,
    route: str | None,
    domain: str,
    now: float,
) -> NewEntry:
    """Validate and serialize one message for the outbox; raises before anything is stored."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError("priority must be an int")
    if route is not None and (not isinstance(route, str) or not route):
        raise ValueError("route must be an account name (a non-empty str) or None")
    prepared = prepare_message(message, sender=sender, recipients=recipients)
    content = prepared.content
    if not isinstance(content, bytes):
        if hasattr(content, "__aiter__"):
            raise TypeError("an async iterable can only be put through AsyncOutbox")
        content = b"".join(iter_content(content))
    envelope = prepared.envelope
    # The envelope sender is a bare address: its domain is after the last "@".
    own = envelope.sender.rpartition("@")[2].strip("[]") if "@" in envelope.sender else ""
    data, message_id = add_missing_fields(content, domain=own or domain)
    if key is None:
        key = message_id
    if not key or not isinstance(key, str):
        raise ValueError("key must be a non-empty str")
    start = to_epoch(not_before)
    return NewEntry(
        key=key,
        message_id=message_id,
        sender=envelope.sender,
        recipients=tuple(dict.fromkeys(envelope.recipients)),  # each address once
        content=data,
        route=route or "",
        priority=priority,
        ready_at=now if start is None else max(now, start),
    )
