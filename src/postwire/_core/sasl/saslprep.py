"""SASLprep (RFC 4013): the string preparation SCRAM applies to names and passwords."""

from __future__ import annotations

import stringprep
import unicodedata
from collections.abc import Callable

__all__ = ["prepared", "saslprep"]

# RFC 4013 §2.3: the prohibited output tables of RFC 3454.
_PROHIBITED: tuple[Callable[[str], bool], ...] = (
    stringprep.in_table_c12,
    stringprep.in_table_c21,
    stringprep.in_table_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str, *, allow_unassigned: bool = True) -> str:
    """Prepare a user name or password with the SASLprep profile (RFC 4013).

    The whole profile is applied: mapping (§2.1), NFKC (§2.2), prohibited
    output (§2.3), bidi checks (§2.4) and, unless ``allow_unassigned``,
    unassigned code points (§2.5).  The tables are the stdlib's
    :mod:`stringprep` ones, which are Unicode 3.2 as RFC 3454 requires, and
    NFKC uses ``unicodedata.ucd_3_2_0`` for the same reason.  SCRAM treats
    passwords as "query" strings (RFC 5802 §2.2), hence the default.
    Raises ValueError (without quoting the text) when the string is refused.
    """
    mapped = "".join(
        " " if stringprep.in_table_c12(ch) else ch  # non-ASCII spaces -> SPACE
        for ch in text
        if not stringprep.in_table_b1(ch)  # "commonly mapped to nothing"
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for ch in prepared:
        if any(table(ch) for table in _PROHIBITED):
            raise ValueError("the text contains a character SASLprep prohibits")
        if not allow_unassigned and stringprep.in_table_a1(ch):
            raise ValueError("the text contains an unassigned code point")
    # RFC 3454 §6: right-to-left text must not mix in left-to-right characters
    # and must begin and end with a right-to-left character.
    if any(stringprep.in_table_d1(ch) for ch in prepared) and (
        any(stringprep.in_table_d2(ch) for ch in prepared)
        or not stringprep.in_table_d1(prepared[0])
        or not stringprep.in_table_d1(prepared[-1])
    ):
        raise ValueError("the text fails the SASLprep bidirectional check")
    return prepared


def prepared(value: str, what: str) -> str:
    """:func:`saslprep` for a credential: errors name ``what``; an empty result is refused."""
    try:
        result = saslprep(value)
    except ValueError as exc:
        raise ValueError(f"the {what} is refused by SASLprep: {exc}") from None
    if not result:
        raise ValueError(f"the {what} is empty after SASLprep")
    return result
