"""Delivery Status Notifications (RFC 3461) as typed options.

``DSN(notify=..., ret=..., envid=..., orcpt=...)`` asks the servers on the way
for a report on delivery, failure or delay.  It becomes MAIL parameters
(``RET``, ``ENVID``) and RCPT parameters (``NOTIFY``, ``ORCPT``), which may
only be sent to a server that offers DSN: the transaction refuses before MAIL
otherwise (a server that ignored them would silently drop the request).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .commands import Params

__all__ = ["DSN", "NOTIFY_VALUES", "RET_VALUES", "utf8_addr_xtext", "xtext"]

#: RFC 3461 §4.1: NEVER alone, or any of the others.
NOTIFY_VALUES = frozenset({"NEVER", "SUCCESS", "FAILURE", "DELAY"})
#: RFC 3461 §4.3: the whole message, or only its header, in a failure report.
RET_VALUES = frozenset({"FULL", "HDRS"})
#: RFC 3461 §4.4: ENVID is at most 100 characters.
MAX_ENVID = 100


def xtext(text: str) -> str:
    """RFC 3461 §4: printable ASCII but "+" and "=", everything else as ``+HH``."""
    out = []
    for byte in text.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def utf8_addr_xtext(address: str) -> str:
    """RFC 6533 §3 utf-8-addr-xtext: UTF-8 as is; "+", "=", "\\" and controls as ``\\x{HH}``."""
    out = []
    for ch in address:
        code = ord(ch)
        if code > 126 or (33 <= code <= 126 and ch not in "+=\\"):
            out.append(ch)
        else:
            out.append(f"\\x{{{code:X}}}")
    return "".join(out)


@dataclass(frozen=True, init=False)
class DSN:
    """What to ask for a Delivery Status Notification (RFC 3461).

    Attributes:
        notify: when to report: ``{"NEVER"}``, or any of ``"SUCCESS"``,
            ``"FAILURE"``, ``"DELAY"`` (case-insensitive); None leaves it to
            the server (usually failures and delays).
        ret: ``"FULL"`` (the whole message) or ``"HDRS"`` (its header only)
            in a failure report; None leaves it to the server.
        envid: an identifier the report will quote (Original-Envelope-Id),
            e.g. the outbox entry or a Message-ID; at most 100 characters.
        orcpt: send each recipient's address as ORCPT, so reports name the
            address as it was given even after forwarding.
    """

    notify: frozenset[str] | None = None
    ret: str | None = None
    envid: str | None = None
    orcpt: bool = False

    def __init__(
        self,
        notify: Iterable[str] | str | None = None,
        ret: str | None = None,
        envid: str | None = None,
        orcpt: bool = False,
    ) -> None:
        values: frozenset[str] | None = None
        if notify is not None:
            items = notify.split(",") if isinstance(notify, str) else list(notify)
            values = frozenset(str(v).strip().upper() for v in items)
            unknown = values - NOTIFY_VALUES
            if not values or unknown:
                raise ValueError(
                    f"DSN notify must be NEVER or any of SUCCESS, FAILURE, DELAY, not {notify!r}"
                )
            if "NEVER" in values and len(values) > 1:
                raise ValueError("DSN notify NEVER cannot be combined with other values")
        if ret is not None:
            ret = ret.upper()
            if ret not in RET_VALUES:
                raise ValueError(f"DSN ret must be FULL or HDRS, not {ret!r}")
        if envid is not None and (not envid or len(envid) > MAX_ENVID or not envid.isprintable()):
            raise ValueError("DSN envid must be 1 to 100 printable characters")
        object.__setattr__(self, "notify", values)
        object.__setattr__(self, "ret", ret)
        object.__setattr__(self, "envid", envid)
        object.__setattr__(self, "orcpt", bool(orcpt))

    def mail_params(self) -> Params:
        """``RET`` and ``ENVID`` for MAIL FROM (RFC 3461 §4.3, §4.4)."""
        params: list[tuple[str, str | None]] = []
        if self.ret is not None:
            params.append(("RET", self.ret))
        if self.envid is not None:
            params.append(("ENVID", xtext(self.envid)))
        return tuple(params)

    def rcpt_params(self, recipient: str) -> Params:
        """``NOTIFY`` and ``ORCPT`` for one RCPT TO (RFC 3461 §4.1, §4.2; RFC 6533)."""
        params: list[tuple[str, str | None]] = []
        if self.notify:
            # In the order RFC 3461 §4.1 lists them, so the command line is stable.
            order = ("NEVER", "SUCCESS", "FAILURE", "DELAY")
            params.append(("NOTIFY", ",".join(v for v in order if v in self.notify)))
        if self.orcpt:
            if recipient.isascii():
                params.append(("ORCPT", "rfc822;" + xtext(recipient)))
            else:
                params.append(("ORCPT", "utf-8;" + utf8_addr_xtext(recipient)))
        return tuple(params)
