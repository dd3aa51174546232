"""Racket's ``net/smtp`` for Python, built on postwire's core.

``smtp_send_message`` speaks the same wire exchange as Racket's
``smtp-send-message`` (greeting, EHLO, optional STARTTLS, optional AUTH PLAIN
or XOAUTH2, MAIL, one RCPT per recipient, DATA, header, lines, the
end-of-message hook, ``.``, QUIT), with the fixes listed in the project's
``racket-net.md``: HELO fallback, UTF-8 AUTH PLAIN, any 2xx accepted, typed
errors carrying the whole reply, input checked before it reaches the wire,
dot-stuffed header lines, timeouts, QUIT on errors, and a :class:`SendResult`.

Cancellation works as in Racket: an exception raised in the sending thread or
task before the end-of-message hook returns (``KeyboardInterrupt``, an error
from the message iterable or from the hook) closes the connection without the
final ``.``, so the server keeps nothing.  From another thread, pass a
:class:`CancelHandle` (``cancel=``) and call its ``cancel()``; in asyncio, run
the send in a thread and cancel the task (see :func:`smtp_send_message_async`).

Modules: ``send`` (the exchange, its parameters, Racket's ``smtp^`` and
``smtp@``) and ``ports`` (``ssl_connect``, ``ports_to_ssl_ports``).
"""

from __future__ import annotations

from ..._core.envelope import SendResult
from ...client import CancelHandle
from .ports import ports_to_ssl_ports, ssl_connect
from .send import (
    SmtpSignature,
    smtp_send_message,
    smtp_send_message_async,
    smtp_send_message_on_ports,
    smtp_sending_end_of_message,
    smtp_sending_server,
    smtp_unit,
)

__all__ = [
    "CancelHandle",
    "SendResult",
    "SmtpSignature",
    "ports_to_ssl_ports",
    "smtp_send_message",
    "smtp_send_message_async",
    "smtp_send_message_on_ports",
    "smtp_sending_end_of_message",
    "smtp_sending_server",
    "smtp_unit",
    "ssl_connect",
]
