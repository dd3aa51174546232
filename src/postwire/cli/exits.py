"""Exit codes by failure stage (sysexits.h, as msmtp and sendmail use them).

A script or an MTA calling ``postwire`` (or ``postwire sendmail``) can tell
"try again later" (75) from "this will never work" (the others) without
parsing any text.
"""

from __future__ import annotations

import enum

from ..errors import (
    ConfigError,
    ConnectError,
    DataError,
    ExtensionNotSupported,
    GreetingError,
    HeloError,
    MessageTooLarge,
    NoCommonMechanism,
    ProtocolError,
    RecipientsRefused,
    ReplyError,
    SenderRefused,
    ServerDisconnected,
    SMTPError,
    Timeout,
    TLSError,
    TLSRequired,
)

__all__ = ["EXIT_TABLE", "CLIError", "Exit", "exit_code_for"]


class Exit(enum.IntEnum):
    """The process exit codes (values from BSD's sysexits.h)."""

    OK = 0
    USAGE = 64
    DATAERR = 65
    NOINPUT = 66
    NOUSER = 67
    UNAVAILABLE = 69
    SOFTWARE = 70
    OSERR = 71
    IOERR = 74
    TEMPFAIL = 75
    PROTOCOL = 76
    NOPERM = 77
    CONFIG = 78


#: The table printed in ``--help`` (and in the README).
EXIT_TABLE = """\
exit codes (sysexits.h, as msmtp and sendmail use them):
   0  EX_OK           sent (to every recipient), probe passed, capture stopped cleanly
  64  EX_USAGE        bad command line: unknown option, recipient starting with '-',
                      CR/LF in a header value, no recipient, --user without a password source
  65  EX_DATAERR      bad message: unparseable, no sender or recipients in it, larger than
                      the server's SIZE, or sender/content refused by the server (5xx)
  66  EX_NOINPUT      a message, attachment or --many file cannot be read
  67  EX_NOUSER       recipients refused (5xx); the accepted ones got the message
  69  EX_UNAVAILABLE  cannot connect, no service (greeting 554), the server lacks a needed
                      extension; capture: aiosmtpd missing
  70  EX_SOFTWARE     internal error (a bug: please report it)
  71  EX_OSERR        capture: cannot listen on the port
  74  EX_IOERR        local input/output error (reading stdin, writing the output)
  75  EX_TEMPFAIL     try again later: a 4xx reply, a timeout, a dropped connection (also
                      when the message may have been delivered: see the error text)
  76  EX_PROTOCOL     TLS failed (wrong --tls mode for the port, handshake, certificate did
                      not verify, STARTTLS missing or refused) or the server broke the protocol
  77  EX_NOPERM       authentication failed (or no usable AUTH mechanism)
  78  EX_CONFIG       configuration: config file unreadable or invalid, unknown account, no
                      server, CA file unusable, password source failed, credentials
                      without TLS (see --allow-plaintext-auth)"""


class CLIError(Exception):
    """An expected failure: print its text as one line and exit with ``code``."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = int(code)


def _smtp_code(exc: SMTPError) -> int:
    if isinstance(exc, RecipientsRefused):
        every_transient = all(r.is_transient for r in exc.refused.values())
        return Exit.TEMPFAIL if every_transient else Exit.NOUSER
    if isinstance(exc, TLSRequired) and exc.step == "AUTH":
        return Exit.CONFIG  # credentials were about to go out in plain text
    if exc.is_transient:
        return Exit.TEMPFAIL  # 4xx, timeouts, dropped connections (RFC 5321 §4.2.1)
    if isinstance(exc, ConnectError):
        return Exit.UNAVAILABLE
    if isinstance(exc, TLSError):
        return Exit.PROTOCOL
    if exc.step.startswith("AUTH"):
        return Exit.NOPERM
    if isinstance(exc, GreetingError):
        return Exit.UNAVAILABLE  # 554 instead of 220: "no SMTP service here" (RFC 5321 §3.1)
    if isinstance(exc, (MessageTooLarge, SenderRefused, DataError)):
        return Exit.DATAERR
    if isinstance(exc, ExtensionNotSupported):
        return Exit.UNAVAILABLE
    if isinstance(exc, (ProtocolError, HeloError, ServerDisconnected, Timeout, ReplyError)):
        return Exit.PROTOCOL
    return Exit.PROTOCOL


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error met while sending or probing."""
    if isinstance(exc, CLIError):
        return exc.code
    if isinstance(exc, SMTPError):
        return _smtp_code(exc)
    if isinstance(exc, ConfigError):
        return Exit.CONFIG
    if isinstance(exc, NoCommonMechanism):
        return Exit.NOPERM
    if isinstance(exc, ValueError):
        return Exit.DATAERR  # the library refuses a bad message or envelope before sending
    if isinstance(exc, OSError):
        return Exit.IOERR
    return Exit.SOFTWARE
