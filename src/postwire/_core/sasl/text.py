"""Checks and escapes for the text that goes into SASL messages.

Every error message names the argument, never its value: these are
credentials (see the package docstring).
"""

from __future__ import annotations

from ..chars import CONTROL

__all__ = ["no_controls", "printable", "required_text", "saslname", "utf8"]


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


def saslname(value: str) -> str:
    """RFC 5801 §4 / RFC 5802 §5.1: escape "=" and "," in a name."""
    return value.replace("=", "=3D").replace(",", "=2C")


def printable(value: str, limit: int = 100) -> str:
    """Server text made safe to show in an exception message."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in value[:limit])
