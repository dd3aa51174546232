"""A local SMTP capture server for development and tests, built on aiosmtpd.

:class:`CaptureServer` listens on a loopback port, accepts every message and keeps it, byte for
byte, in memory (and optionally in a Maildir). It can offer STARTTLS or implicit TLS with a
throw-away CA made at start-up, and AUTH PLAIN, LOGIN and CRAM-MD5 against a user/password map.
It is not a relay and never delivers anything anywhere.

Needs the ``capture`` extra (``aiosmtpd``, ``cryptography``).

Modules: ``server`` (:class:`CaptureServer`), ``protocol`` (the aiosmtpd SMTP
side and its AUTH), ``message`` (:class:`CapturedMessage`), ``maildir`` and
``certs`` (the throw-away CA).
"""

from __future__ import annotations

from .message import CapturedMessage
from .server import DEFAULT_DATA_SIZE_LIMIT, CaptureServer, CaptureTLS

#: The former name of :data:`CaptureTLS`, kept for existing imports.  It is not
#: :data:`postwire.TLSMode` (the client's modes): new code says ``CaptureTLS``.
TLSMode = CaptureTLS

__all__ = [
    "DEFAULT_DATA_SIZE_LIMIT",
    "CaptureServer",
    "CaptureTLS",
    "CapturedMessage",
    "TLSMode",
]
