"""Character classes that several layers check, written once.

Every layer that takes text from a caller and puts it on the wire or into a
header refuses the same characters; the classes and the check live here so
that the rule cannot drift between the SMTP commands, SASL, addresses,
headers, the sendmail layer, the capture server and the command line.
"""

from __future__ import annotations

import re

__all__ = [
    "ATEXT",
    "ATEXT_CLASS",
    "CONTROL",
    "CONTROL_EXCEPT_TAB",
    "LINE_BREAK_OR_NUL",
    "first_control",
]

#: C0 controls and DEL.  Never in an SMTP command argument (RFC 5321 §4.1.1:
#: a command is one line of printable text) nor in a SASL identity or
#: password (RFC 4013 §2.3 prohibits C.2.1 controls).
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: The same, less HTAB: in header field bodies and display names a tab is
#: folding white space (RFC 5322 §2.2, §3.2.2), every other control is not.
CONTROL_EXCEPT_TAB = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

#: What ends or truncates a line for a line-oriented consumer (a command
#: line argument of sendmail, a header line): CR, LF and NUL.
LINE_BREAK_OR_NUL = re.compile(r"[\r\n\0]")

#: RFC 5322 §3.2.3 atext, as the body of a regular-expression class.
ATEXT_CLASS = "A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~"

#: The same characters as a set, for scanners that look at one at a time.
ATEXT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
)


def first_control(text: str, *, allow_tab: bool = False) -> re.Match[str] | None:
    """The first control character in ``text`` (HTAB allowed when asked), or None."""
    return (CONTROL_EXCEPT_TAB if allow_tab else CONTROL).search(text)
