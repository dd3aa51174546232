"""SMTP commands as frozen values (RFC 5321 §4.1.1).

Every command checks its arguments when it is built: CR, LF, NUL and every
other C0 control (and DEL) are refused in every argument and ESMTP parameter,
so no command built here can smuggle a second command onto the wire
(command injection, as in GHSA-c7w3-x93f-qmm8 for nodemailer's SIZE).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .chars import CONTROL

__all__ = [
    "Auth",
    "AuthResponse",
    "Bdat",
    "Command",
    "Data",
    "DataEnd",
    "Ehlo",
    "Greeting",
    "Helo",
    "Lhlo",
    "Mail",
    "Noop",
    "Quit",
    "Rcpt",
    "Rset",
    "StartTLS",
    "check_argument",
    "format_params",
    "mail",
    "rcpt",
    "wire",
]

# RFC 5321 §4.1.2 esmtp-keyword: ALPHA / DIGIT then ALPHA / DIGIT / "-".
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")

Params = tuple[tuple[str, str | None], ...]


def check_argument(what: str, value: str) -> str:
    """Return ``value`` if it holds no control character, else raise ``ValueError``."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    m = CONTROL.search(value)
    if m is not None:
        raise ValueError(
            f"{what} contains the control character {m.group()!r} "
            f"(CR, LF, NUL and other controls are not allowed in SMTP commands): {value!r}"
        )
    return value


def _check_params(params: Params) -> Params:
    for key, value in params:
        check_argument("ESMTP parameter name", key)
        if not _KEYWORD.match(key):
            raise ValueError(f"ESMTP parameter name is not a keyword: {key!r}")
        if value is not None:
            check_argument(f"ESMTP parameter {key}", value)
            # RFC 5321 §4.1.2 esmtp-value: %d33-60 / %d62-126 (no space, no "=").
            # SMTPUTF8 (RFC 6531 §3.3) allows UTF-8 here too.
            if " " in value or "=" in value:
                raise ValueError(f"ESMTP parameter {key} has a space or '=': {value!r}")
    return params


def params_from(params: Mapping[str, str | None] | Iterable[tuple[str, str | None]]) -> Params:
    """Normalise ESMTP parameters given as a mapping or pairs."""
    if not params:
        return ()
    items = params.items() if isinstance(params, Mapping) else params
    return _check_params(tuple((k, v) for k, v in items))


def format_params(params: Params) -> str:
    return "".join(f" {k}" if v is None else f" {k}={v}" for k, v in params)


@functools.cache
def _verb_line(verb: str) -> bytes:
    return f"{verb}\r\n".encode("ascii")


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every command; ``verb`` names it in replies and errors."""

    verb = "?"
    #: Whether RFC 2920 lets this command be followed by another before its reply.
    pipelinable = False

    def to_bytes(self) -> bytes:
        """The command line; a command without arguments is its verb alone."""
        return _verb_line(self.verb)


@dataclass(frozen=True, slots=True)
class Greeting(Command):
    """Not a command: stands for the server's opening 220 in the pending queue."""

    verb = "greeting"

    def to_bytes(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class _Hello(Command):
    """EHLO or HELO with the client's domain or address literal (RFC 5321 §4.1.1.1)."""

    domain: str

    def __post_init__(self) -> None:
        _check_domain(self.domain)

    def to_bytes(self) -> bytes:
        return f"{self.verb} {self.domain}\r\n".encode("ascii")


@dataclass(frozen=True, slots=True)
class Ehlo(_Hello):
    verb = "EHLO"


@dataclass(frozen=True, slots=True)
class Helo(_Hello):
    verb = "HELO"


@dataclass(frozen=True, slots=True)
class Lhlo(_Hello):
    """LMTP's greeting command (RFC 2033 §4.1): EHLO's reply, under another name."""

    verb = "LHLO"


def _check_domain(domain: str) -> None:
    check_argument("EHLO/HELO name", domain)
    if not domain or " " in domain or not domain.isascii():
        raise ValueError(f"EHLO/HELO name must be a non-empty ASCII word: {domain!r}")


def _check_path(what: str, address: str) -> None:
    check_argument(what, address)
    if "<" in address or ">" in address:
        raise ValueError(f"{what} must be a bare address without angle brackets: {address!r}")
    # RFC 5321 §4.5.3.1.3: a path is at most 256 octets including the brackets.
    if len(address.encode("utf-8")) > 254:
        raise ValueError(f"{what} is longer than RFC 5321 allows (254 octets): {address!r}")


@dataclass(frozen=True, slots=True)
class Mail(Command):
    """``MAIL FROM:<sender>`` with ESMTP parameters; ``""`` is the null path."""

    sender: str
    params: Params = ()
    verb = "MAIL"
    pipelinable = True

    def __post_init__(self) -> None:
        _check_path("sender address", self.sender)
        _check_params(self.params)

    def to_bytes(self) -> bytes:
        line = f"MAIL FROM:<{self.sender}>{format_params(self.params)}\r\n"
        return line.encode("utf-8")


@dataclass(frozen=True, slots=True)
class Rcpt(Command):
    recipient: str
    params: Params = ()
    verb = "RCPT"
    pipelinable = True

    def __post_init__(self) -> None:
        _check_path("recipient address", self.recipient)
        if not self.recipient:
            raise ValueError("recipient address is empty")
        _check_params(self.params)

    def to_bytes(self) -> bytes:
        line = f"RCPT TO:<{self.recipient}>{format_params(self.params)}\r\n"
        return line.encode("utf-8")


@dataclass(frozen=True, slots=True)
class Data(Command):
    verb = "DATA"
    # RFC 2920 §3.1: DATA may be the last command of a pipelined group.
    pipelinable = True


@dataclass(frozen=True, slots=True)
class DataEnd(Command):
    """The ``.`` that ends the message data; its reply says whether it was accepted."""

    verb = "end of data"
    pipelinable = True

    def to_bytes(self) -> bytes:
        return b".\r\n"


@dataclass(frozen=True, slots=True)
class Bdat(Command):
    """``BDAT size [LAST]`` (RFC 3030 §2); the chunk follows the command line."""

    size: int
    last: bool = False
    verb = "BDAT"
    pipelinable = True

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise ValueError(f"BDAT size must be a non-negative int: {self.size!r}")

    def to_bytes(self) -> bytes:
        return f"BDAT {self.size}{' LAST' if self.last else ''}\r\n".encode("ascii")


@dataclass(frozen=True, slots=True)
class Rset(Command):
    verb = "RSET"
    pipelinable = True


@dataclass(frozen=True, slots=True)
class Noop(Command):
    verb = "NOOP"
    pipelinable = True


@dataclass(frozen=True, slots=True)
class Quit(Command):
    verb = "QUIT"


@dataclass(frozen=True, slots=True)
class StartTLS(Command):
    verb = "STARTTLS"


@dataclass(frozen=True, slots=True)
class Auth(Command):
    """``AUTH mechanism [initial-response]`` (RFC 4954 §4).

    The initial response is already base64 text; it is hidden from ``repr``
    because it carries credentials.
    """

    mechanism: str
    initial_response: str | None = field(default=None, repr=False)
    verb = "AUTH"

    def __post_init__(self) -> None:
        check_argument("AUTH mechanism", self.mechanism)
        if not _KEYWORD.match(self.mechanism.replace("_", "-")):
            raise ValueError(f"not a SASL mechanism name: {self.mechanism!r}")
        if self.initial_response is not None:
            _check_base64("AUTH initial response", self.initial_response)

    def to_bytes(self) -> bytes:
        if self.initial_response is None:
            return f"AUTH {self.mechanism}\r\n".encode("ascii")
        return f"AUTH {self.mechanism} {self.initial_response}\r\n".encode("ascii")


@dataclass(frozen=True, slots=True)
class AuthResponse(Command):
    """A client line answering a 334 challenge (base64 text, or ``*`` to cancel)."""

    text: str = field(repr=False)
    verb = "AUTH"

    def __post_init__(self) -> None:
        _check_base64("AUTH response", self.text)

    def to_bytes(self) -> bytes:
        return f"{self.text}\r\n".encode("ascii")


_BASE64ISH = re.compile(r"[A-Za-z0-9+/=*]*\Z")


def _check_base64(what: str, text: str) -> None:
    # Never echo the value: it carries credentials.
    if not isinstance(text, str) or not _BASE64ISH.match(text):
        raise ValueError(f"{what} must be base64 text")


@functools.lru_cache(maxsize=1024)
def wire(command: Mail | Rcpt) -> bytes:
    """``command.to_bytes()``, remembered: bulk sends repeat the same MAIL and RCPT.

    Only for envelope commands: an AUTH line carries credentials and must not
    outlive its use in a cache.
    """
    return command.to_bytes()


@functools.lru_cache(maxsize=1024)
def mail(sender: str, params: Params = ()) -> Mail:
    """A validated MAIL command, built once per (sender, parameters)."""
    return Mail(sender, params)


@functools.lru_cache(maxsize=1024)
def rcpt(recipient: str, params: Params = ()) -> Rcpt:
    """A validated RCPT command, built once per (recipient, parameters)."""
    return Rcpt(recipient, params)
