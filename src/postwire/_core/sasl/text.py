"""Checks and escapes for the text that goes into SASL messages.

Every error message names the argument, never its value: these are
credentials (see the package docstring).
"""

from __future__ import annotations

from ..chars import CONTROL

__all__ = ["check_credential", "no_controls", "printable", "required_text", "saslname", "utf8"]


def required_text(value: object, what: str, *, allow_empty: bool = False) -> str:
    """Check a credential argument; messages name the argument, never its value."""
    if value is None:
        raise ValueError(f"a {what} is required")
    if not isinstance(value, str):
        raise TypeError(f"the {what} must be str, not {type(value).__name__}")
    if not value and not allow_empty:
        raise ValueError(f"the {what} must not be empty")
    return value


def utf8(value: str, what: str) -> bytes:
    """``value`` as UTF-8; a lone surrogate is a ValueError that does not quote it."""
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        # The codec's own message quotes the offending character: never show it.
        raise ValueError(f"the {what} is not valid Unicode text") from None


def no_controls(value: str, what: str) -> str:
    """Refuse control characters (they would break the OAuth key-value framing)."""
    if CONTROL.search(value):
        raise ValueError(f"the {what} must not contain control characters")
    return value


def check_credential(value: object, what: str) -> None:
    """Refuse a user name, password or token that no server can be sent, before any connection.

    RFC 4013 §2.3 (SASLprep) prohibits every control character, and CR or LF
    would end the AUTH line.  The usual culprit is a secret read from a file
    with its trailing newline, which would otherwise fail only at AUTH time.
    The message names the argument, never its value.
    """
    if value is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"the {what} must be a str, not {type(value).__name__}")
    match = CONTROL.search(value)
    if match is not None:
        where = "at its end" if match.start() == len(value) - 1 else f"at {match.start()}"
        raise ValueError(
            f"the {what} contains a control character ({ord(match.group()):#04x}) {where}: "
            "RFC 4013 §2.3 prohibits them (a secret read from a file may keep its newline)"
        )


def saslname(value: str) -> str:
    """RFC 5801 §4 / RFC 5802 §5.1: escape "=" and "," in a name."""
    return value.replace("=", "=3D").replace(",", "=2C")


def printable(value: str, limit: int = 100) -> str:
    """Server text made safe to show in an exception message."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in value[:limit])
