"""A local SMTP capture server for development and tests: the mail catcher.

:class:`CaptureServer` listens on a loopback port, accepts every message and keeps it, byte for
byte, in memory (and optionally in a Maildir, listed again after a restart). It can offer
STARTTLS or implicit TLS (a throw-away CA, a CA kept in a folder, or a given certificate) and
AUTH PLAIN, LOGIN and CRAM-MD5 against a user/password map. It can serve a web UI and a
Mailpit-compatible HTTP API, follow fault scripts, open extra ports as separate mailboxes, and
release a message to a real server. It is not a relay and never delivers anything by itself.

Needs the ``capture`` extra (``aiosmtpd``, ``cryptography``, ``aiohttp``).

Modules: ``server`` (:class:`CaptureServer`), ``protocol`` (the aiosmtpd SMTP side, its AUTH
and faults), ``session`` (transcripts), ``message`` (:class:`CapturedMessage`), ``store``
(IDs, search, Maildir persistence), ``parsed`` (the Mailpit JSON views), ``search``,
``mailbox`` (:class:`Mailbox`, extra ports), ``faults`` (:class:`FaultScript`), ``events``
(server-sent events), ``sanitize`` (the HTML preview), ``release``, ``web`` (aiohttp UI and
API), ``maildir``, ``certs`` and ``pytest_plugin``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are imported on first use (PEP 562), so that importing the pytest plugin, which pytest
# does at every start through its entry point, costs nothing and needs no extra installed.
_EXPORTS = {
    "DEFAULT_DATA_SIZE_LIMIT": "server",
    "CaptureServer": "server",
    "CaptureTLS": "server",
    "TLSMode": "server",
    "CapturedMessage": "message",
    "FaultScript": "faults",
    "RecipientRule": "faults",
    "Mailbox": "mailbox",
    "find_codes": "mailbox",
    "find_links": "mailbox",
    "MessageStore": "store",
    "ReleaseTarget": "release",
}

if TYPE_CHECKING:
    from .faults import FaultScript, RecipientRule
    from .mailbox import Mailbox, find_codes, find_links
    from .message import CapturedMessage
    from .release import ReleaseTarget
    from .server import DEFAULT_DATA_SIZE_LIMIT, CaptureServer, CaptureTLS
    from .store import MessageStore

    #: The former name of :data:`CaptureTLS`, kept for existing imports.  It is not
    #: :data:`postwire.TLSMode` (the client's modes): new code says ``CaptureTLS``.
    TLSMode = CaptureTLS


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_DATA_SIZE_LIMIT",
    "CaptureServer",
    "CaptureTLS",
    "CapturedMessage",
    "FaultScript",
    "Mailbox",
    "MessageStore",
    "RecipientRule",
    "ReleaseTarget",
    "TLSMode",
    "find_codes",
    "find_links",
]
