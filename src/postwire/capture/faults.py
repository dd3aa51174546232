"""Fault scripts: deterministic misbehaviour of the capture server, for testing clients.

A :class:`FaultScript` says what the server does wrong, every time, until it is changed:

- ``refuse_recipients``: RCPT TO matching a pattern (shell-style, case-insensitive, such as
  ``*@bounce.example``) is answered with the given code and text;
- ``max_recipients``: after N accepted recipients in one transaction, each further RCPT gets
  ``452 4.5.3 Too many recipients`` (RFC 5321 §4.5.3.1.10 says a server refusing recipients
  over its limit answers 452, and a client must then send the rest in another transaction;
  the enhanced code is RFC 3463's "too many recipients");
- ``greeting_421``: every connection is greeted with ``421 4.3.2`` and closed (RFC 5321 §3.1:
  a server that cannot serve answers 421 instead of 220);
- ``refuse_auth``: every AUTH is answered with this code (535 5.7.8 "credentials invalid",
  or 454 4.7.0 "temporary authentication failure", RFC 4954 §6);
- ``drop_after_data``: the connection is dropped after the final ``.`` without a reply; the
  message is kept, as by a server that queued it and crashed before answering, which is what
  makes a client's "possibly delivered" outcome real (RFC 5321 §4.1.1.4);
- ``delay_data_reply``: the reply to the final ``.`` comes this many seconds late.

Scripts are set from the command line (:func:`parse_fault`, ``--fault``), the HTTP API
(:meth:`FaultScript.from_json`, ``PUT /api/v1/faults``) and Python (the pytest fixtures).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["FaultScript", "RecipientRule", "parse_fault", "parse_faults"]

_CODE = re.compile(r"[245]\d\d")
_DEFAULT_TEXT = {
    4: "4.2.0 Recipient refused (fault script)",
    5: "5.1.1 Recipient refused (fault script)",
}


@dataclass(frozen=True)
class RecipientRule:
    """Refuse recipients matching ``pattern`` (shell-style, case-insensitive) with ``code``."""

    pattern: str
    code: int = 550
    text: str = ""

    def __post_init__(self) -> None:
        if not (400 <= self.code <= 599):
            raise ValueError(f"a refusal code is 4xx or 5xx, not {self.code}")
        if any(ch in self.text for ch in "\r\n\0"):
            raise ValueError("the reply text may not hold CR, LF or NUL")

    def matches(self, address: str) -> bool:
        """Whether ``address`` (without angle brackets) matches the pattern."""
        return fnmatch.fnmatchcase(address.lower(), self.pattern.lower())

    @property
    def reply(self) -> str:
        """The reply line sent for a matching recipient."""
        return f"{self.code} {self.text or _DEFAULT_TEXT[self.code // 100]}"


@dataclass(frozen=True)
class FaultScript:
    """What the server does wrong; the default (no argument) is nothing."""

    refuse_recipients: tuple[RecipientRule, ...] = ()
    max_recipients: int | None = None
    greeting_421: bool = False
    refuse_auth: int | None = None
    drop_after_data: bool = False
    delay_data_reply: float = 0.0

    def __post_init__(self) -> None:
        if self.max_recipients is not None and self.max_recipients < 0:
            raise ValueError("max_recipients must be 0 or more")
        if self.refuse_auth is not None and not 400 <= self.refuse_auth <= 599:
            raise ValueError(f"refuse_auth is a 4xx or 5xx code, not {self.refuse_auth}")
        if not 0 <= self.delay_data_reply <= 3600:
            raise ValueError("delay_data_reply is between 0 and 3600 seconds")

    @property
    def active(self) -> bool:
        """Whether the script changes anything."""
        return self != FaultScript()

    def recipient_reply(self, address: str, accepted: int) -> str | None:
        """The refusal for RCPT ``address`` after ``accepted`` recipients, or None to accept."""
        for rule in self.refuse_recipients:
            if rule.matches(address):
                return rule.reply
        if self.max_recipients is not None and accepted >= self.max_recipients:
            return "452 4.5.3 Too many recipients (fault script)"
        return None

    @property
    def auth_reply(self) -> str | None:
        """The answer to every AUTH, or None to authenticate as usual."""
        if self.refuse_auth is None:
            return None
        text = (
            "4.7.0 Temporary authentication failure"
            if self.refuse_auth < 500
            else ("5.7.8 Authentication credentials invalid")
        )
        return f"{self.refuse_auth} {text} (fault script)"

    # -- JSON (the HTTP API) -----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The script as the API shows it (Mailpit-style PascalCase keys)."""
        return {
            "RefuseRecipients": [
                {"Pattern": r.pattern, "Code": r.code, "Text": r.reply[4:]}
                for r in self.refuse_recipients
            ],
            "MaxRecipients": self.max_recipients,
            "Greeting421": self.greeting_421,
            "RefuseAuth": self.refuse_auth,
            "DropAfterData": self.drop_after_data,
            "DelayDataReply": self.delay_data_reply,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultScript:
        """Build a script from :meth:`to_json`'s shape; missing keys mean "no fault"."""
        if not isinstance(data, Mapping):
            raise ValueError("a fault script is a JSON object")
        known = {
            "RefuseRecipients",
            "MaxRecipients",
            "Greeting421",
            "RefuseAuth",
            "DropAfterData",
            "DelayDataReply",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r} (known: {', '.join(sorted(known))})")
        rules = []
        for item in data.get("RefuseRecipients") or []:
            if not isinstance(item, Mapping) or not isinstance(item.get("Pattern"), str):
                raise ValueError("RefuseRecipients holds objects with a Pattern")
            rules.append(
                RecipientRule(
                    item["Pattern"], _int(item.get("Code", 550)), str(item.get("Text") or "")
                )
            )
        max_rcpt = data.get("MaxRecipients")
        refuse_auth = data.get("RefuseAuth")
        delay = data.get("DelayDataReply") or 0
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise ValueError("DelayDataReply is a number of seconds")
        return cls(
            refuse_recipients=tuple(rules),
            max_recipients=None if max_rcpt is None else _int(max_rcpt),
            greeting_421=_bool(data.get("Greeting421", False)),
            refuse_auth=None if refuse_auth is None else _int(refuse_auth),
            drop_after_data=_bool(data.get("DropAfterData", False)),
            delay_data_reply=float(delay),
        )


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, not {value!r}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, not {value!r}")
    return value


# -- the command line ----------------------------------------------------------------------

FAULT_HELP = """\
fault scripts (--fault, repeatable):
  rcpt:PATTERN=CODE[:TEXT]  refuse recipients matching PATTERN (shell-style: *@bad.example)
  max-rcpt:N                452 4.5.3 after N recipients in one transaction
  greeting-421              421 at the greeting, then close
  auth:CODE                 answer every AUTH with CODE (535, 454...)
  drop-after-data           drop the connection after the final "." (message kept)
  delay-data:SECONDS        delay the reply to the final "."
"""


def parse_fault(text: str, script: FaultScript | None = None) -> FaultScript:
    """Add the fault ``text`` (one ``--fault`` value, see ``FAULT_HELP``) to ``script``."""
    script = script or FaultScript()
    name, _, value = text.partition(":")
    name = name.strip().lower()
    try:
        if name == "rcpt":
            pattern, sep, reply = value.rpartition("=")
            if not sep or not pattern:
                raise ValueError("expected rcpt:PATTERN=CODE[:TEXT]")
            code_text, _, reply_text = reply.partition(":")
            if not _CODE.fullmatch(code_text):
                raise ValueError(f"not a reply code: {code_text!r}")
            rule = RecipientRule(pattern, int(code_text), reply_text.strip())
            return replace(script, refuse_recipients=(*script.refuse_recipients, rule))
        if name == "max-rcpt":
            return replace(script, max_recipients=int(value))
        if name == "greeting-421" and not value:
            return replace(script, greeting_421=True)
        if name == "auth":
            if not _CODE.fullmatch(value):
                raise ValueError(f"not a reply code: {value!r}")
            return replace(script, refuse_auth=int(value))
        if name == "drop-after-data" and not value:
            return replace(script, drop_after_data=True)
        if name == "delay-data":
            return replace(script, delay_data_reply=float(value))
    except ValueError as exc:
        raise ValueError(f"bad fault {text!r}: {exc}") from None
    raise ValueError(f"unknown fault {text!r}")


def parse_faults(texts: Iterable[str]) -> FaultScript:
    """All ``--fault`` values as one script."""
    script = FaultScript()
    for text in texts:
        script = parse_fault(text, script)
    return script
