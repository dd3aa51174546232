"""The local SMTP capture server (see :mod:`postwire.capture.server`).

Needs the ``capture`` extra (``aiosmtpd``, ``cryptography``).
"""

from __future__ import annotations

from .server import DEFAULT_DATA_SIZE_LIMIT, CapturedMessage, CaptureServer, TLSMode

__all__ = ["DEFAULT_DATA_SIZE_LIMIT", "CaptureServer", "CapturedMessage", "TLSMode"]
