"""The envelope of one message and the result of sending it (RFC 5321 §2.3.1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .commands import Params, check_argument
from .dsn import DSN
from .reply import Reply

__all__ = ["Envelope", "SendResult"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who a message is from and to, and what the content needs.

    ``size`` is the content length when known (for SIZE, RFC 1870);
    ``eight_bit`` says the content has octets above 127 (BODY=8BITMIME,
    RFC 6152), ``None`` that it is not known (a stream: BODY=8BITMIME is
    declared when offered); ``smtputf8`` says the addresses are UTF-8, so
    the server must offer SMTPUTF8 (RFC 6531); ``utf8_headers`` that header
    fields hold raw UTF-8 (RFC 6532), so SMTPUTF8 is declared when offered.
    A ``BODY=BINARYMIME`` in ``mail_params`` sets ``binary``.
    """

    sender: str
    recipients: tuple[str, ...]
    size: int | None = None
    eight_bit: bool | None = False
    smtputf8: bool = False
    mail_params: Params = ()
    rcpt_params: Params = ()
    #: Binary content (e.g. NUL octets, or lines not ended by CRLF) that must
    #: travel unchanged: BODY=BINARYMIME over BDAT (RFC 3030 §3).
    binary: bool = False
    utf8_headers: bool = False
    #: Delivery Status Notification parameters (RFC 3461), or None.
    dsn: DSN | None = None
    #: REQUIRETLS (RFC 8689): only over TLS, and only to a server that keeps requiring it.
    requiretls: bool = False

    def __post_init__(self) -> None:
        check_argument("sender address", self.sender)
        if isinstance(self.recipients, str):
            raise TypeError("recipients must be a sequence of addresses, not one str")
        if not self.recipients:
            raise ValueError("no recipients: a message needs at least one")
        for rcpt in self.recipients:
            check_argument("recipient address", rcpt)
        if not self.binary and any(
            k.upper() == "BODY" and (v or "").upper() == "BINARYMIME" for k, v in self.mail_params
        ):
            object.__setattr__(self, "binary", True)
        if not self.smtputf8 and not (
            self.sender.isascii() and all(r.isascii() for r in self.recipients)
        ):
            object.__setattr__(self, "smtputf8", True)

    def rcpt_params_for(self, recipient: str) -> Params:
        """The RCPT parameters for ``recipient``: the caller's, then its DSN ones."""
        if self.dsn is None:
            return self.rcpt_params
        return (*self.rcpt_params, *self.dsn.rcpt_params(recipient))


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the server did with one message.

    ``accepted`` lists the recipients the server took; ``refused`` maps each
    refused recipient to its reply; ``reply`` is the server's answer to the
    end of the data (its text often carries a queue id).
    """

    accepted: list[str]
    refused: Mapping[str, Reply] = field(default_factory=dict)
    reply: Reply = field(default_factory=lambda: Reply(250))

    @property
    def ok(self) -> bool:
        """True when the message was accepted for every recipient."""
        return not self.refused and bool(self.accepted)
